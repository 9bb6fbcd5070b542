"""The run's progress line (`RunProgress`) and what reaches the terminal
from the command line (`simmim_tf.console`)."""

import io
import os
import subprocess
import sys

import keras
import numpy as np

from simmim_tf.console import _pass_on, step
from simmim_tf.training.run_progress import RunProgress, fit_progress, format_duration

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def drive(progress, clock, epochs, steps, step_s, end_s, logs=None):
    """Runs `progress` through `epochs` epochs as `fit` would, each step
    taking `step_s` seconds and each epoch's end (validation) `end_s`."""
    progress.set_params({"epochs": epochs, "steps": steps})
    progress.on_train_begin()
    for epoch in range(epochs):
        progress.on_epoch_begin(epoch)
        for batch in range(steps):
            progress.on_train_batch_begin(batch)
            clock.now += step_s
            progress.on_train_batch_end(batch, {"loss": 0.5})
        clock.now += end_s
        progress.on_epoch_end(epoch, logs or {"loss": 0.5, "accuracy": 0.9})


def test_one_plain_line_per_epoch_when_not_a_terminal():
    clock, out = FakeClock(), io.StringIO()
    progress = RunProgress(validation_steps=5, stream=out, live=False, clock=clock)
    drive(progress, clock, epochs=3, steps=10, step_s=1.0, end_s=4.0)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and "\r" not in out.getvalue()
    # After epoch 1: 20 steps at 1 s and two epoch ends at the measured 4 s.
    assert lines[0] == "epoch 1/3  loss 0.5000  accuracy 90.0%  0:14 spent, 0:28 left"
    assert lines[2] == "epoch 3/3  loss 0.5000  accuracy 90.0%  0:42 spent"


def test_time_left_counts_validation_before_it_was_measured():
    clock, out = FakeClock(), io.StringIO()
    progress = RunProgress(validation_steps=20, stream=out, live=True, clock=clock)
    progress.set_params({"epochs": 2, "steps": 10})
    progress.on_train_begin()
    progress.on_epoch_begin(0)
    for batch, seconds in enumerate([30.0, 1.0, 1.0, 1.0, 1.0]):  # the first step traces
        progress.on_train_batch_begin(batch)
        clock.now += seconds
        progress.on_train_batch_end(batch, {"loss": 1.0})
    # 15 steps at 1 s (not the traced step's 30 s) and two validations of
    # 20 steps at half a training step each.
    assert progress.seconds_left() == 15 + 2 * 20 * 0.5
    # Rewritten in place, from the first step whose pace is measured.
    assert out.getvalue().startswith("\r\x1b[Kepoch 1/2  step 2/10  1.0 steps/s")
    assert "0:34 spent, 0:35 left" in progress.line()


def test_a_time_budget_caps_the_time_left():
    clock = FakeClock()
    progress = RunProgress(budget_s=60.0, stream=io.StringIO(), live=False, clock=clock)
    drive(progress, clock, epochs=1, steps=5, step_s=2.0, end_s=0.0)
    progress.set_params({"epochs": 100, "steps": 5})  # an epoch cap far beyond the budget
    assert progress.seconds_left() == 60.0 - 10.0


def test_fit_with_the_progress_line():
    """`verbose="auto"` gives `fit` no bar of its own and one line per epoch."""
    verbose, callbacks = fit_progress("auto")
    assert verbose == 0 and isinstance(callbacks[0], RunProgress)
    assert fit_progress(2) == (2, [])
    out = io.StringIO()
    callbacks[0].stream, callbacks[0].live = out, False
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = np.zeros((32, 3), "float32"), np.zeros((32,), "int32")
    model.fit(x, y, batch_size=8, epochs=2, validation_split=0.25, verbose=0, callbacks=callbacks)
    lines = out.getvalue().splitlines()
    assert [line.split("  ")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    assert "val_accuracy" in lines[0] and "left" in lines[0]


def test_format_duration():
    assert format_duration(65) == "1:05"
    assert format_duration(3725) == "1:02:05"


def test_step_prints_what_and_how_long():
    out = io.StringIO()
    with step("converting int8", stream=out):
        pass
    assert out.getvalue() == "converting int8 ...\n  done (0 s)\n"


def test_native_log_lines_are_dropped_and_the_rest_passes():
    written = []
    text = (
        b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        b"I0000 00:00:1796607702.880118   13839 port.cc:153] oneDNN custom operations are on.\n"
        b"E0000 00:00:1796607578.584936   13192 cuda_platform.cc:52] failed call to cuInit\n"
        b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
        b"Traceback (most recent call last):\n"
        b"\rsort-of-clevr:  50%|#####     | 30/60"
    )
    rest = _pass_on(text, written.append)
    kept = b"Traceback (most recent call last):\n\rsort-of-clevr:  50%|#####     | 30/60"
    assert written == [kept]
    assert rest == b""
    # A partial line that may become a log line waits for its end: LiteRT
    # writes "INFO: ", the message and the newline apart.
    assert _pass_on(b"I0000 00:00:17", written.append) == b"I0000 00:00:17"
    assert _pass_on(b"INFO: ", written.append) == b"INFO: "
    rest = _pass_on(b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.", written.append)
    assert _pass_on(rest + b"\n", written.append) == b""
    assert _pass_on(b"Is it", written.append) == b""  # not held: passed on at once
    assert written == [kept, b"Is it"]


def test_tensorflow_native_lines_are_filtered():
    """TensorFlow's native start-up lines (absl, oneDNN, CUDA probes, as
    this machine's TensorFlow 2.21 writes them at import and at the first
    op) do not reach stderr through the filter the command line installs;
    Python's own output does."""
    script = (
        "from simmim_tf.console import filter_native_logs\n"
        "filter_native_logs()\n"
        "import sys, tensorflow as tf\n"
        "print(int(tf.constant(1) + 1))\n"
        "print('a warning the user should see', file=sys.stderr)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": ROOT},
        capture_output=True,
        timeout=300,
    )
    assert out.stdout == b"2\n"
    assert out.stderr == b"a warning the user should see\n"
