"""Shared fixtures: tiny configurations, and one trained + exported run that
the export, edge and CLI tests share (so the suite converts to TFLite once)."""

import collections
import contextlib
import os
import shutil

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

# The files the two workers start with (`make test` passes
# --no-loadscope-reorder, so files go out in this order): test_cli builds
# the trained run that test_export and others share, while the other
# worker runs long files that need nothing built; then the rest, most
# tests first (pytest-xdist's own order).
FIRST = ("test_cli.py", "test_training_options.py", "test_export.py", "test_readme.py")


def pytest_collection_modifyitems(session, config, items):
    count = collections.Counter(item.path.name for item in items)

    def order(item):
        name = item.path.name
        return (0, FIRST.index(name)) if name in FIRST else (1, -count[name], name)

    items.sort(key=order)  # stable: each file keeps its own order


TINY_BACKBONE = dict(
    vocabulary_size=30,
    image_size=32,
    max_sequence_length=10,
    hidden_dim=32,
    num_heads=2,
    question_layers=1,
    memory_slots=4,
    memory_layers=2,
    intermediate_dim=64,
    patch_size=8,
    stem="conv",
    dropout=0.0,
    image_layers=1,
    relational=dict(
        num_anchors=1,
        read_offsets=True,
        refine_positions=True,
        read_anchors=True,
        offsets_in_regions=True,
        gated_between=False,
    ),
)


def run_python(script, cwd, env=None, timeout=600):
    """Runs `script` in a fresh Python process with the repository importable."""
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def tiny_inputs(batch=2, length=8, real=5, seed=0, image_size=32, vocabulary_size=30):
    rng = np.random.default_rng(seed)
    ids = np.zeros((batch, length), np.int32)
    ids[:, :real] = rng.integers(2, vocabulary_size, (batch, real))
    return {
        "images": rng.integers(0, 256, (batch, image_size, image_size, 3)).astype(np.uint8),
        "token_ids": ids,
        "padding_mask": ids != 0,
    }


@contextlib.contextmanager
def built_once(tmp_path_factory, name):
    """A folder that one process of the test session builds and every
    other reuses: under pytest-xdist (`make test` runs two workers) the
    workers share the session's base folder and build under a file lock
    (pytest-xdist's pattern for session fixtures). Yields (folder, built):
    build it when `built` is False; it counts as built only if the block
    ends without an error, so a failed build is tried again afresh."""
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # shared by the workers of one session
    folder, done = root / name, root / f"{name}.done"
    with FileLock(str(root / f"{name}.lock")):
        built = done.exists()
        if not built:
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
        yield folder, built
        done.touch()


def _paths(root):
    return {d: str(root / d) for d in ("data", "run", "export")}


@pytest.fixture(scope="session")
def trained_export(tmp_path_factory):
    """A tiny Sort-of-CLEVR set, a run trained on it with the CLI, and its export."""
    from simmim_tf.cli import main

    with built_once(tmp_path_factory, "pipeline") as (root, built):
        data, run, export = _paths(root).values()
        if not built:
            args = ["data", "sort-of-clevr", "--out", data, "--num-images", "300", "--seed", "3"]
            assert main(args) == 0
            assert main(["train", "--data", data, "--out", run, "--epochs", "4",
                         "--batch-size", "32"]) == 0  # fmt: skip
            assert main(["export", "--run", run, "--out", export, "--quantize",
                         "float32,float16,int8", "--calibration-size", "100"]) == 0  # fmt: skip
    return _paths(root)


def _clevr2d_task_run(tmp_path_factory, task, seed, *export_options):
    """A tiny CLEVR-2D set (seed `seed`), a `task` run trained on it with the
    CLI for 4 epochs, and its float32 export; built once per session."""
    from simmim_tf.cli import main

    with built_once(tmp_path_factory, task) as (root, built):
        data, run, export = _paths(root).values()
        if not built:
            assert (
                main(["data", "clevr2d", "--out", data, "--num-images", "60", "--image-size",
                      "64", "--per-family", "1", "--seed", str(seed)])
                == 0
            )  # fmt: skip
            assert (
                main(["train", "--task", task, "--data", data, "--out", run, "--epochs", "4",
                      "--batch-size", "16", "--max-sequence-length", "48",
                      "--learning-rate", "3e-3"])
                == 0
            )  # fmt: skip
            args = ["export", "--run", run, "--out", export, "--quantize", "float32"]
            assert main(args + list(export_options)) == 0
    return _paths(root)


@pytest.fixture(scope="session")
def retrieval_export(tmp_path_factory):
    """A tiny CLEVR-2D set, a retrieval run trained on it with the CLI, and
    its float32 towers (two conversions for the whole suite)."""
    return _clevr2d_task_run(tmp_path_factory, "retrieval", 1)


@pytest.fixture(scope="session")
def captioning_export(tmp_path_factory):
    """A tiny CLEVR-2D set, a captioning run trained on it with the CLI, and
    its float32 encoder and decoder with their report (two conversions)."""
    return _clevr2d_task_run(tmp_path_factory, "captioning", 2, "--report")
