"""A training run killed with SIGKILL and started again with the same
command resumes from its last backup and ends with the optimizer steps of an
uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time

from simmim_tf.data import sort_of_clevr
from simmim_tf.data.vqa_dataset import load_split
from simmim_tf.training.image_grouped_batches import steps_per_epoch
from simmim_tf.training.runs import load_run

EPOCHS = 6
BATCH = 32


def test_killed_run_resumes_with_the_same_number_of_steps(tmp_path):
    data, run = str(tmp_path / "data"), str(tmp_path / "run")
    sort_of_clevr.generate(data, num_images=40, seed=0, progress=False)
    command = [sys.executable, "-m", "simmim_tf.cli", "train", "--data", data, "--out", run]
    command += ["--epochs", str(EPOCHS), "--batch-size", str(BATCH)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")

    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    backup = os.path.join(run, "backup", "training_metadata.json")
    deadline = time.time() + 300
    while not os.path.exists(backup) and first.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    first.send_signal(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL, "the run ended before it could be killed"
    assert not os.path.exists(os.path.join(run, "task.json"))

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]

    load_run(run)  # a complete run
    # Image-grouped batches (4 questions per image, the default).
    per_epoch = steps_per_epoch(load_split(data, "train"), BATCH, 4)
    with open(os.path.join(run, "history.json")) as f:
        history = json.load(f)
    # The optimizer's step count survived the kill: every epoch's steps, once.
    assert history["steps"] == EPOCHS * per_epoch
    # The second run trained only the epochs the first had not finished, and said so.
    assert 0 < len(history["loss"]) < EPOCHS
    done = EPOCHS - len(history["loss"])
    assert f"resuming after epoch {done} of {EPOCHS}" in second.stdout
    assert not os.path.exists(os.path.join(run, "backup")), "backup left behind"
