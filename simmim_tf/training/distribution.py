"""Choosing the tf.distribute strategy a run trains under.

`batch_size` in a run config is the global batch: each step consumes that
many questions, split evenly between the replicas, so a run's learning rate
and schedule do not change with the number of devices. With more devices,
raise the global batch to keep each one busy, and the learning rate with it
if needed (a run records both in run_config.json).
"""

import json
import os

import tensorflow as tf

from simmim_tf.errors import SimMIMInputError

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")


def cluster_workers():
    """Number of workers that TF_CONFIG names (0 when it is unset)."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return 0
    try:
        config = json.loads(raw)
        return len(config.get("cluster", {}).get("worker", []))
    except (json.JSONDecodeError, AttributeError) as e:
        raise SimMIMInputError(f"TF_CONFIG is not a valid cluster description ({e})") from None


def make_strategy(name="auto"):
    """A tf.distribute strategy from its name.

    auto: MultiWorkerMirroredStrategy when TF_CONFIG names several workers,
    MirroredStrategy when several GPUs are visible, else the one device.
    one_device: the first GPU, or the CPU. mirrored: every visible GPU (or
    the logical CPU devices, if configured). multi_worker: the cluster of
    TF_CONFIG.
    """
    if name not in STRATEGIES:
        raise SimMIMInputError(f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}")
    if name == "auto":
        if cluster_workers() > 1:
            name = "multi_worker"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "one_device"
    if name == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus or tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if cluster_workers() < 1:
        raise SimMIMInputError("strategy multi_worker needs TF_CONFIG naming the cluster")
    return tf.distribute.MultiWorkerMirroredStrategy()


def worker_index():
    """None outside a cluster; else this process's worker index (the chief is 0)."""
    raw = os.environ.get("TF_CONFIG")
    if not raw or cluster_workers() < 1:
        return None
    config = json.loads(raw)
    task = config.get("task", {})
    if "chief" in config.get("cluster", {}):
        return 0 if task.get("type") == "chief" else int(task.get("index", 0)) + 1
    return int(task.get("index", 0))


def fit_under_multi_worker(model, strategy):
    """Works around two Keras 3.15 failures of `fit` under multi-worker.

    Both come from reducing values across workers with
    `strategy.reduce(..., axis=0)`, which MultiWorkerMirroredStrategy cannot
    do for a dict nor for a scalar (keras-team/keras#20329, #20585):
    - before training, Keras builds the model from one batch averaged across
      replicas; building needs only shapes and dtypes, so this worker's
      first replica's batch serves;
    - after each step, Keras averages the logged metrics with `axis=0`,
      which a scalar does not have; the step's metrics are returned with
      shape (1,), so that the average over workers has an axis to run over.
    Call it on a model created and compiled under `strategy.scope()`.
    """
    keras_build = model._maybe_symbolic_build

    def build(iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, it in iterator:
                batch = next(it)
                data_batch = tf.nest.map_structure(
                    lambda v: strategy.experimental_local_results(v)[0], batch
                )
                break
        return keras_build(iterator=None, data_batch=data_batch)

    keras_train_step = model.train_step

    def train_step(data):
        return {name: tf.reshape(value, [1]) for name, value in keras_train_step(data).items()}

    model._maybe_symbolic_build = build
    model.train_step = train_step
    return model


def run_folder(out_dir):
    """Where this process writes its run: OUT for the chief (or no cluster),
    OUT/worker_<i> for the other workers, so that nothing is overwritten on
    a shared file system and every worker's result is kept."""
    worker = worker_index()
    return os.path.join(out_dir, f"worker_{worker}") if worker else out_dir


def shard_by_data(dataset):
    """Every worker sees every element and keeps its share of each batch.

    The policy for all three input pipelines:
    - memory: the arrays are one source, not files; FILE cannot apply.
    - stream: one file per image is not a shard; FILE would give each
      worker a different number of questions, hence of batches.
    - tfrecord: FILE would let each worker read only its shards, but the
      pipeline declares its batch count (`assert_cardinality`, for the
      progress bar) from all questions, which would then be wrong on every
      worker. DATA keeps it right, at the cost of each worker reading every
      shard.
    Saying DATA also avoids TensorFlow's fallback warning.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)
