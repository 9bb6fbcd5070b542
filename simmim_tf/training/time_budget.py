"""Training for a number of minutes rather than epochs (`train --minutes`).

Users think in minutes, and a machine's pace varies from day to day: a run
given minutes ends on time on a slow day too, and its learning rate follows
the share of the time spent (warm-up, then a cosine to zero), as the
benchmarks' wall-clock budgets do.
"""

import math
import time

import keras


class TimeBudget(keras.callbacks.Callback):
    """Stops `fit` so that it ends within `minutes` of wall clock, and sets
    the learning rate from the share of that time spent.

    The clock runs from `start`, validation included. Training
    stops at the first step after which the time left is less than an
    epoch's end-of-epoch work (validation, checkpoints) has taken, so the
    last epoch's end fits in the budget too. Put it last in the callbacks.

    Args:
        minutes: float. The budget.
        peak: float. The peak learning rate.
        warmup_fraction: float. Share of the time spent warming up.
        start: `time.perf_counter()` when the clock started (default: when
            `fit` begins); `train` starts it before reading the data.
    """

    def __init__(self, minutes, peak, warmup_fraction=0.05, start=None):
        super().__init__()
        self.start = start
        self.budget_s = 60.0 * minutes
        self.peak = peak
        self.warmup_fraction = warmup_fraction
        self.end_of_epoch_s = 0.0
        self.stopped_early = False

    def on_train_begin(self, logs=None):
        if self.start is None:
            self.start = time.perf_counter()

    def elapsed(self):
        return time.perf_counter() - self.start

    def learning_rate(self, spent):
        """The learning rate when a share `spent` (0 to 1) of the time is spent."""
        if spent < self.warmup_fraction:
            return self.peak * max(spent, 1e-3) / self.warmup_fraction
        progress = (spent - self.warmup_fraction) / max(1e-9, 1 - self.warmup_fraction)
        return self.peak * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    def on_train_batch_begin(self, batch, logs=None):
        spent = self.elapsed() / self.budget_s
        self.model.optimizer.learning_rate.assign(self.learning_rate(spent))

    def on_train_batch_end(self, batch, logs=None):
        self.last_step_end = time.perf_counter()
        if self.elapsed() + self.end_of_epoch_s >= self.budget_s:
            self.model.stop_training = True
            self.stopped_early = True

    def on_epoch_end(self, epoch, logs=None):
        # Validation and checkpoints: what the end of the last epoch will
        # cost (this callback comes last in `fit`'s list).
        self.end_of_epoch_s = max(self.end_of_epoch_s, time.perf_counter() - self.last_step_end)
