"""One progress line for a whole training run (`train`, `pretrain`).

Keras's bar counts one epoch and leaves out the end-of-epoch work
(validation, checkpoints), and redirected to a file it writes every update
(1.3 MB in eight epochs). This line counts the run: the epoch, the step,
steps per second, the loss, the time spent and the time left with
validation included. On a terminal it is rewritten in place; elsewhere (a
log file, a notebook's captured output) it is one plain line per epoch.
"""

import sys
import time

import keras

# Back to the line's start, and clear it (a terminal's "erase in line").
CLEAR_LINE = "\r\x1b[K"


def format_duration(seconds):
    """ "1:05" for 65 s, "1:02:05" for an hour and more."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class RunProgress(keras.callbacks.Callback):
    """Prints the run's progress: give `fit` `verbose=0` and this callback.

    The time left is the steps left at the measured pace plus each epoch
    end still to come at the cost measured so far (before the first one,
    a validation step is taken to cost half a training step). With a time
    budget (`budget_s`, `train --minutes`) it is at most what the budget
    leaves.

    Args:
        validation_steps: int. Validation batches per epoch end (0 for none).
        budget_s: float or None. The run's time budget in seconds, from
            `start`.
        start: `time.perf_counter()` when the run's clock started (default:
            when `fit` begins).
        stream: where to write (default `sys.stdout`).
        live: bool or None. Rewrite one line in place; default: when
            `stream` is a terminal.
        clock: the time source (tests pass a fake one).
    """

    def __init__(
        self,
        validation_steps=0,
        budget_s=None,
        start=None,
        stream=None,
        live=None,
        clock=time.perf_counter,
    ):
        super().__init__()
        self.validation_steps = validation_steps
        self.budget_s = budget_s
        self.start = start
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self.clock = clock
        self.steps_done = 0
        self.timed_steps = 0
        self.step_seconds = 0.0
        self.end_of_epoch_seconds = []
        self.last_printed = -1.0
        self.logs = {}

    def on_train_begin(self, logs=None):
        if self.start is None:
            self.start = self.clock()

    @property
    def epochs(self):
        return self.params.get("epochs") or 1

    @property
    def steps_per_epoch(self):
        return self.params.get("steps")

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.epoch_steps = 0
        self.batch_start = self.clock()

    def on_train_batch_begin(self, batch, logs=None):
        self.batch_start = self.clock()

    def on_train_batch_end(self, batch, logs=None):
        now = self.clock()
        done = batch + 1  # batches since the epoch began (steps_per_execution skips some)
        if self.steps_done:  # the run's first step traces the graph: not the pace
            self.timed_steps += done - self.epoch_steps
            self.step_seconds += now - self.batch_start
        self.steps_done += done - self.epoch_steps
        self.epoch_steps = done
        self.last_step_end = now
        self.logs = logs or {}
        if self.live and self.timed_steps and now - self.last_printed >= 0.5:
            self.last_printed = now
            self.stream.write(CLEAR_LINE + self.line())
            self.stream.flush()

    def on_epoch_end(self, epoch, logs=None):
        now = self.clock()
        self.end_of_epoch_seconds.append(now - getattr(self, "last_step_end", now))
        self.logs = logs or {}
        prefix = CLEAR_LINE if self.live else ""
        self.stream.write(prefix + self.epoch_line() + "\n")
        self.stream.flush()

    def seconds_per_step(self):
        if not self.timed_steps:
            return self.elapsed() / max(1, self.steps_done)
        return self.step_seconds / self.timed_steps

    def seconds_left(self):
        """Training steps left at the measured pace, plus the epoch ends to come."""
        per_step = self.seconds_per_step()
        if self.steps_per_epoch:
            steps_left = self.steps_per_epoch * self.epochs - self.steps_done
        else:  # an epoch of unknown length: assume the first epoch's
            steps_left = self.epoch_steps * (self.epochs - self.epoch - 1)
        ends_left = self.epochs - len(self.end_of_epoch_seconds)
        if self.end_of_epoch_seconds:
            end_cost = sum(self.end_of_epoch_seconds) / len(self.end_of_epoch_seconds)
        else:
            end_cost = 0.5 * per_step * self.validation_steps
        left = max(0, steps_left) * per_step + ends_left * end_cost
        if self.budget_s is not None:
            left = min(left, max(0.0, self.budget_s - self.elapsed()))
        return left

    def elapsed(self):
        return self.clock() - self.start

    def metrics(self, keys):
        parts = []
        for key in keys:
            value = self.logs.get(key)
            if value is None:
                continue
            name = key.replace("answers_", "")
            shown = f"{100 * float(value):.1f}%" if "accuracy" in key else f"{float(value):.4f}"
            parts.append(f"{name} {shown}")
        return "  ".join(parts)

    def line(self):
        """The live line: where the run is, its pace, the time spent and left."""
        step = f"step {self.epoch_steps:,}"
        if self.steps_per_epoch:
            step += f"/{self.steps_per_epoch:,}"
        pace = 1.0 / max(self.seconds_per_step(), 1e-9)
        shown = self.metrics(["loss", "accuracy", "answers_accuracy"])
        return (
            f"epoch {self.epoch + 1}/{self.epochs}  {step}  {pace:.1f} steps/s  {shown}  "
            f"{format_duration(self.elapsed())} spent, {format_duration(self.seconds_left())} left"
        )

    def epoch_line(self):
        """The line each epoch ends with: its metrics, the time spent and left."""
        keys = [k for k in self.logs if "loss" in k or "accuracy" in k]
        keys = [
            k for k in keys if k.replace("val_", "") in ("loss", "accuracy", "answers_accuracy")
        ]
        left = self.seconds_left()
        ending = f", {format_duration(left)} left" if self.epoch + 1 < self.epochs else ""
        return (
            f"epoch {self.epoch + 1}/{self.epochs}  {self.metrics(keys)}  "
            f"{format_duration(self.elapsed())} spent{ending}"
        )


def fit_progress(verbose, validation_steps=0, budget_s=None, start=None):
    """(the `verbose` to give `fit`, the callbacks to add) for a run's
    `verbose`: "auto" is this module's line, 0 silence, 1 and 2 Keras's own."""
    if verbose != "auto":
        return verbose, []
    return 0, [RunProgress(validation_steps, budget_s, start)]


def known_steps(dataset):
    """Batches in a `tf.data.Dataset` where its length is known, else 0."""
    if dataset is None or not hasattr(dataset, "cardinality"):
        return 0
    return max(0, int(dataset.cardinality()))
