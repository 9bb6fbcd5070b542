"""The exported files: builtin ops, static shapes, GPU-delegate ops, and
agreement with the Keras model."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from simmim_tf.data.vqa_dataset import load_split
from simmim_tf.export.gpu_compatibility import gpu_delegate_problems
from simmim_tf.export.tflite_model_ops import non_builtin_ops, read_ops
from simmim_tf.training.vqa_trainer import load_run

VARIANTS = ("float32", "float16", "int8")


def _keras_and_tflite(trained_export, variant, count):
    """Keras probabilities and TFLite probabilities on `count` test questions."""
    model, tokenizer, _ = load_run(trained_export["run"])
    test = load_split(trained_export["data"], "test")
    ids, mask = tokenizer.encode_batch(test.questions[:count])
    images = test.images[test.image_index[:count]]
    keras_probs = tf.nn.softmax(
        model.predict({"images": images, "token_ids": ids, "padding_mask": mask}, verbose=0)
    ).numpy()
    runner = Interpreter(
        os.path.join(trained_export["export"], f"model_{variant}.tflite")
    ).get_signature_runner()
    lite = np.concatenate(
        [
            runner(images=images[i : i + 1].astype(np.float32), token_ids=ids[i : i + 1])[
                "probabilities"
            ]
            for i in range(count)
        ]
    )
    return keras_probs, lite


@pytest.mark.parametrize("variant", VARIANTS)
def test_builtin_ops_only_and_static_shapes(trained_export, variant):
    path = os.path.join(trained_export["export"], f"model_{variant}.tflite")
    ops = read_ops(path)
    assert non_builtin_ops(ops) == []
    assert ops and all(
        min(t.shape_signature, default=1) > 0 for op in ops for t in op.inputs + op.outputs if t
    )
    interpreter = Interpreter(path)
    interpreter.allocate_tensors()
    shapes = {
        d["name"].split("_")[-1].split(":")[0]: tuple(d["shape"])
        for d in interpreter.get_input_details()
    }
    assert shapes["images"][0] == 1 and shapes["ids"] == (1, 16)
    if variant == "int8":
        weight_types = {t.type for op in ops for t in op.inputs if t and t.is_const}
        float_constants = {
            op.name for op in ops for t in op.inputs if t and t.is_const and t.type == "FLOAT32"
        }
        assert "INT8" in weight_types
        assert float_constants <= {"ONE_HOT"}  # its on/off values; every weight is int8


@pytest.mark.parametrize("variant", ["float32", "float16"])
def test_float_models_pass_the_gpu_delegate_op_check(trained_export, variant):
    path = os.path.join(trained_export["export"], f"model_{variant}.tflite")
    assert gpu_delegate_problems(path) == []


def test_gpu_check_catches_what_the_delegate_refuses(tmp_path):
    """A model with an op outside the delegate's list and a dynamic batch fails the check."""

    class Model(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec((None, 8), tf.float32)])
        def __call__(self, x):
            return {"y": tf.argmax(x, axis=1), "k": tf.math.top_k(x, 2).values}

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [Model().__call__.get_concrete_function()], Model()
    )
    problems = gpu_delegate_problems(converter.convert())
    assert any("TOPK_V2" in p for p in problems) and any("ARG_MAX" in p for p in problems)
    assert any("dynamic shape" in p for p in problems)


def test_float32_tflite_matches_keras(trained_export):
    keras_probs, lite = _keras_and_tflite(trained_export, "float32", 40)
    assert np.max(np.abs(keras_probs - lite)) < 1e-3


def test_int8_tflite_agrees_with_keras(trained_export):
    """int8 against Keras, as a regression guard.

    The walking-skeleton target is the same argmax on at least 99% of
    questions; it is NOT met yet: 94.7% on 300 test questions of the
    `make demo` model (after keeping ONE_HOT in float, see
    `litert_exporter.convert`; 40% before). The remaining error is in
    LayerNorm (RSQRT) and attention (BATCH_MATMUL) per the quantization
    debugger. This test holds the level reached so that it cannot silently
    get worse.
    """
    keras_probs, lite = _keras_and_tflite(trained_export, "int8", 200)
    agreement = np.mean(keras_probs.argmax(-1) == lite.argmax(-1))
    print(f"int8 argmax agreement with Keras: {agreement:.3f}")
    assert np.allclose(lite.sum(-1), 1.0, atol=0.02)
    assert agreement >= 0.85, agreement


def test_saved_model_loads_without_simmim_or_keras(trained_export):
    """The SavedModel's serving signature in a fresh process with TensorFlow only."""
    script = (
        "import sys, numpy as np, tensorflow as tf\n"
        "m = tf.saved_model.load(sys.argv[1])\n"
        "f = m.signatures['serving_default']\n"
        "out = f(images=tf.zeros((3, 75, 75, 3)), token_ids=tf.ones((3, 16), tf.int32))\n"
        "p = out['probabilities'].numpy()\n"
        "assert p.shape[0] == 3 and np.allclose(p.sum(-1), 1, atol=1e-5)\n"
        "assert 'simmim_tf' not in sys.modules and 'keras_hub' not in sys.modules\n"
        "print('SAVED_MODEL_OK')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, os.path.join(trained_export["export"], "saved_model")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "SAVED_MODEL_OK" in result.stdout, result.stderr[-2000:]


def test_export_report(trained_export):
    from simmim_tf.export.export_report import export_report

    report = export_report(
        trained_export["export"], trained_export["run"], trained_export["data"], latency_runs=3
    )
    rows = report["variants"]
    assert set(rows) == {"keras", "float32", "float16", "int8"}
    assert rows["float32"]["agreement_with_keras"] >= 0.99
    assert rows["int8"]["bytes"] < rows["float16"]["bytes"] < rows["float32"]["bytes"]
    assert rows["float16"]["gpu_delegate_problems"] == []
    for variant in ("float32", "float16", "int8"):
        assert set(rows[variant]["accuracy"]) >= {"overall", "relational", "non_relational"}
        assert all(ms > 0 for ms in rows[variant]["latency_ms"].values())
    with open(os.path.join(trained_export["export"], "report.md")) as f:
        table = f.read()
    for name in rows:
        assert f"| {name} |" in table
