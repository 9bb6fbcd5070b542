"""tf.distribute: strategy choice, MirroredStrategy against one device, and
MultiWorkerMirroredStrategy with two worker processes on this machine.

Logical devices and TF_CONFIG must be set before TensorFlow starts, so the
training checks run in fresh Python processes.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from simmim_tf.errors import SimMIMInputError
from simmim_tf.training import distribution

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow")


def test_auto_without_a_cluster_follows_the_gpu_count(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    several_gpus = len(tf.config.list_logical_devices("GPU")) > 1
    expected = tf.distribute.MirroredStrategy if several_gpus else tf.distribute.OneDeviceStrategy
    assert isinstance(distribution.make_strategy("auto"), expected)


def test_bad_strategy_names_are_clear_errors(monkeypatch):
    with pytest.raises(SimMIMInputError, match="unknown strategy 'tpu'"):
        distribution.make_strategy("tpu")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(SimMIMInputError, match="needs TF_CONFIG"):
        distribution.make_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(SimMIMInputError, match="TF_CONFIG is not a valid"):
        distribution.make_strategy("auto")


@pytest.mark.parametrize(
    "config, expected",
    [
        (None, None),
        ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}, 1),
        ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}, 0),
        (
            {"cluster": {"chief": ["c:0"], "worker": ["a:1"]}, "task": {"type": "chief"}},
            0,
        ),
        (
            {
                "cluster": {"chief": ["c:0"], "worker": ["a:1"]},
                "task": {"type": "worker", "index": 0},
            },
            1,
        ),
    ],
)
def test_worker_index(monkeypatch, config, expected):
    if config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    assert distribution.worker_index() == expected


MIRRORED_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras

    sys.path.insert(0, "tests")
    from conftest import TINY_BACKBONE, tiny_inputs
    from simmim_tf.models.simmim_backbone import SimMIMBackbone
    from simmim_tf.models.simmim_vqa import SimMIMVQA
    from simmim_tf.training.distribution import make_strategy

    x = tiny_inputs(batch=64, length=10, real=6)
    x["padding_mask"] = x["padding_mask"].astype("int32")
    y = np.arange(64) % 5

    def build():
        model = SimMIMVQA(SimMIMBackbone(**TINY_BACKBONE), num_answers=5)
        # Plain SGD: an update proportional to the gradient, so rounding
        # differences in the cross-replica sum stay rounding-sized. (Adam
        # divides by each gradient's own scale and grows them on parameters
        # whose gradient is nearly zero; and Keras 3.15 clips each replica's
        # gradient before the sum, so clipping would differ too.)
        model.compile(optimizer=keras.optimizers.SGD(0.1))
        return model

    def data():
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(16)  # 4 steps

    keras.utils.set_random_seed(0)
    single = build()
    start = single.get_weights()
    single.fit(data(), epochs=2, verbose=0)
    strategy = make_strategy("mirrored")
    assert strategy.num_replicas_in_sync == 2, strategy.num_replicas_in_sync
    with strategy.scope():
        mirrored = build()
    mirrored.set_weights(start)
    mirrored.fit(data(), epochs=2, verbose=0)
    moved = max(float(np.abs(a - b).max()) for a, b in zip(start, single.get_weights()))
    apart = max(
        float(np.abs(a - b).max()) for a, b in zip(single.get_weights(), mirrored.get_weights())
    )
    print(f"RESULT {moved} {apart}")

    # The captioner: token-level cross-entropy with padding weighted out.
    from simmim_tf.models.simmim_captioner import SimMIMCaptioner

    ids = x["token_ids"]
    weights = (ids[:, 1:] != 0).astype("float32")

    def build_captioner():
        model = SimMIMCaptioner(SimMIMBackbone(**TINY_BACKBONE), 1)
        model.compile(optimizer=keras.optimizers.SGD(0.1))
        return model

    def caption_data():
        inputs = {"images": x["images"], "token_ids": ids[:, :-1]}
        return tf.data.Dataset.from_tensor_slices((inputs, ids[:, 1:], weights)).batch(16)

    keras.utils.set_random_seed(0)
    single = build_captioner()
    start = single.get_weights()
    single.fit(caption_data(), epochs=2, verbose=0)
    with strategy.scope():
        mirrored = build_captioner()
    mirrored.set_weights(start)
    mirrored.fit(caption_data(), epochs=2, verbose=0)
    moved = max(float(np.abs(a - b).max()) for a, b in zip(start, single.get_weights()))
    apart = max(
        float(np.abs(a - b).max()) for a, b in zip(single.get_weights(), mirrored.get_weights())
    )
    print(f"CAPTIONER {moved} {apart}")

    # A fixed batch of 32 questions, each with its image and object targets,
    # as every input pipeline gives them off one replica (no image_index).
    from simmim_tf.models.simmim_vqa_training import SimMIMVQATraining

    x = tiny_inputs(batch=32, length=10, real=6)
    x["padding_mask"] = x["padding_mask"].astype("int32")
    rng = np.random.default_rng(0)
    regions = 16  # 32-px images, 8-px patches
    grounding = np.concatenate(
        [rng.integers(0, 3, (32, regions, 2)), rng.uniform(-0.5, 0.5, (32, regions, 2))], -1
    ).astype("float32")
    anchor = (rng.uniform(size=(32, regions)) < 0.2).astype("float32")
    y = {"answers": np.arange(32) % 5, "grounding": grounding, "anchor": anchor}

    def build_full():
        vqa = SimMIMVQA(SimMIMBackbone(**TINY_BACKBONE), num_answers=5)
        model = SimMIMVQATraining(vqa, [3, 3], grounding_weight=1.0, anchor_weight=1.0)
        model.compile(keras.optimizers.SGD(0.1))  # plain SGD, as above
        return model

    def full_data():
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(16)  # 2 steps

    keras.utils.set_random_seed(0)
    single = build_full()
    single.evaluate(full_data(), verbose=0)  # builds it
    start = single.get_weights()
    losses = single.evaluate(full_data(), verbose=0, return_dict=True)
    single.fit(full_data(), epochs=1, verbose=0)
    with strategy.scope():
        mirrored = build_full()
        mirrored.evaluate(full_data(), verbose=0)
    mirrored.set_weights(start)
    mirrored_losses = mirrored.evaluate(full_data(), verbose=0, return_dict=True)
    mirrored.fit(full_data(), epochs=1, verbose=0)
    for name in ("answers_loss", "grounding_loss", "anchor_loss", "loss"):
        print("LOSS", name, losses[name], mirrored_losses[name])
    moved = max(float(np.abs(a - b).max()) for a, b in zip(start, single.get_weights()))
    apart = max(
        float(np.abs(a - b).max()) for a, b in zip(single.get_weights(), mirrored.get_weights())
    )
    print(f"FULL {moved} {apart}")

    # Clipping: each replica holds half of a gradient (3, 0); one device
    # clips the whole (3, 0) to norm 1 and steps by it.
    from simmim_tf.models.summed_then_clipped import SumThenClip

    shares = strategy.experimental_distribute_values_from_function(
        lambda context: tf.constant([1.5, 0.0])
    )
    for name, cls in [
        ("keras", keras.optimizers.SGD),
        ("summed_then_clipped", type("SGD", (SumThenClip, keras.optimizers.SGD), {})),
    ]:
        with strategy.scope():
            variable = keras.Variable(np.zeros(2, "float32"))
            optimizer = cls(learning_rate=1.0, clipnorm=1.0)
            optimizer.build([variable])

        @tf.function
        def step(gradient):
            strategy.run(lambda g: optimizer.apply([g], [variable]), args=(gradient,))

        step(shares)
        print("CLIP", name, *variable.numpy())
    """
)


@pytest.fixture(scope="module")
def mirrored_output():
    """What MIRRORED_SCRIPT prints (it runs once for the tests below)."""
    out = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=os.path.dirname(os.path.dirname(__file__)),
        timeout=400,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_mirrored_on_two_devices_matches_one_device(mirrored_output):
    for model in ("RESULT", "CAPTIONER"):  # SimMIMVQA, then SimMIMCaptioner
        moved, apart = map(float, mirrored_output.split(model)[1].split()[:2])
        assert moved > 1e-3, model  # training did change the weights
        assert apart < 1e-4, f"{model}: one device and two replicas differ by {apart}"


def test_full_recipe_under_mirrored_matches_one_device(mirrored_output):
    """The grounding and anchor losses, and a step of training on them,
    are the same on two replicas as on one device."""
    lines = [line.split() for line in mirrored_output.splitlines()]
    losses = {w[1]: (float(w[2]), float(w[3])) for w in lines if w and w[0] == "LOSS"}
    assert set(losses) == {"answers_loss", "grounding_loss", "anchor_loss", "loss"}
    for name, (single, mirrored) in losses.items():
        assert single > 0.01, name  # each loss is really computed
        assert abs(single - mirrored) < 1e-5, (
            f"{name}: one device {single}, two replicas {mirrored}"
        )
    moved, apart = (float(v) for w in lines if w and w[0] == "FULL" for v in w[1:])
    assert moved > 1e-3  # the step changed the weights
    assert apart < 1e-4, f"after a step, one device and two replicas differ by {apart}"


def test_two_replicas_clip_the_summed_gradient(mirrored_output):
    """The tasks' optimizer clips the gradient summed across replicas, as
    one device clips the whole batch's; Keras 3.15 alone clips each
    replica's half first (if this starts to fail, Keras has changed, and
    `SumThenClip` may go)."""
    lines = [line.split() for line in mirrored_output.splitlines()]
    steps = {w[1]: [float(v) for v in w[2:]] for w in lines if w and w[0] == "CLIP"}
    assert steps["summed_then_clipped"] == [-1.0, 0.0]  # (3, 0) clipped to norm 1
    assert steps["keras"] == [-2.0, 0.0]  # each half clipped to (1, 0), then summed


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_multi_worker_two_processes_end_with_identical_weights(tmp_path):
    from simmim_tf.data import sort_of_clevr

    data = str(tmp_path / "data")
    sort_of_clevr.generate(data, num_images=20, seed=0, progress=False)
    run = str(tmp_path / "run")
    workers = [f"127.0.0.1:{_free_port()}" for _ in range(2)]
    processes = []
    for index in range(2):
        env = dict(
            ENV,
            TF_CONFIG=json.dumps(
                {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
            ),
        )
        command = [sys.executable, "-m", "simmim_tf.cli", "train", "--data", data, "--out", run]
        command += ["--epochs", "2", "--batch-size", "32", "--strategy", "multi_worker"]
        processes.append(
            subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        )
    for p in processes:
        output = p.communicate(timeout=400)[0].decode(errors="replace")
        assert p.returncode == 0, output[-3000:]

    from simmim_tf.data.vqa_dataset import load_split
    from simmim_tf.training.runs import load_run

    chief = load_run(run)
    other = load_run(os.path.join(run, "worker_1"))
    # The batch of 32 is global: each step takes 16 questions from each worker.
    steps_per_epoch = -(-len(load_split(data, "train")) // 32)
    steps = []
    for folder in (run, os.path.join(run, "worker_1")):
        with open(os.path.join(folder, "history.json")) as f:
            steps.append(json.load(f)["steps"])
    assert steps == [2 * steps_per_epoch] * 2
    for a, b in zip(chief.get_weights(), other.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
