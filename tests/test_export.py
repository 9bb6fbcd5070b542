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
from simmim_tf.training.runs import load_run

VARIANTS = ("float32", "float16", "int8")


def _keras_and_tflite(trained_export, variant, count):
    """Keras probabilities and TFLite probabilities on `count` test questions."""
    model = load_run(trained_export["run"])
    tokenizer = model.preprocessor.question_tokenizer()
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
    """int8 against Keras, at the level this fixture reaches.

    On the two-anchor Sort-of-CLEVR models the export's int8 agrees with
    Keras on 99.50% (6 epochs on 10,000 images) and 99.22% (`make demo`) of
    the 4,000 test questions (docs/export.md, "int8 on the two-anchor
    models"). This fixture's small model has near ties on most questions,
    and which ones depends on thread timing in training: on its 600 test
    questions int8 agreed on 94.3% and 89.8% overall with the two-anchor
    preset, 92.3% with the anchors read (2026-12-01) and 92.5% with refined
    positions (2026-12-02), and in all four runs on every question where
    Keras's two best answers are 0.1 apart.
    That is the level held; the overall bound sits below the lowest run. A
    broken conversion (ONE_HOT in int8 gave 40%) changes decided answers too.
    """
    count = len(load_split(trained_export["data"], "test"))
    keras_probs, lite = _keras_and_tflite(trained_export, "int8", count)
    assert np.allclose(lite.sum(-1), 1.0, atol=0.02)
    _assert_agrees_where_decided(keras_probs, lite, "int8")


def _assert_agrees_where_decided(keras_probs, lite, variant):
    """An 8-bit variant gives Keras's answer on ≥ 99% of the questions
    where Keras's two best answers are 0.1 apart (the export's target), and
    on ≥ 88% of all (below the lowest run of this fixture: its near ties
    move with thread timing in training and with the CPU's kernels)."""
    same = keras_probs.argmax(-1) == lite.argmax(-1)
    top2 = np.sort(keras_probs, axis=-1)[:, -2:]
    decided = (top2[:, 1] - top2[:, 0]) >= 0.1
    print(
        f"{variant} argmax agreement with Keras: {same.mean():.3f} of {len(same)}, "
        f"{same[decided].mean():.3f} of the {decided.sum()} decided"
    )
    assert decided.sum() >= 100, decided.sum()
    assert same[decided].mean() >= 0.99, same[decided].mean()
    assert same.mean() >= 0.88, same.mean()


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
        trained_export["export"],
        trained_export["run"],
        trained_export["data"],
        latency_runs=3,
        threads=(1,),
    )
    rows = report["variants"]
    assert set(rows) == {"keras", "float32", "float16", "int8"}
    assert rows["float32"]["agreement_with_keras"] >= 0.99
    assert rows["int8"]["bytes"] < rows["float16"]["bytes"] < rows["float32"]["bytes"]
    assert rows["float16"]["gpu_delegate_problems"] == []
    for variant in ("float32", "float16", "int8"):
        assert set(rows[variant]["accuracy"]) >= {"overall", "relational", "non_relational"}
        assert set(rows[variant]["latency_ms"]) == {"1"}
        assert all(ms > 0 for ms in rows[variant]["latency_ms"].values())
        # ai-edge-litert's own benchmark tool ran on the same file.
        assert all(ms > 0 for ms in rows[variant]["litert_benchmark_ms"].values()), rows[variant]
    with open(os.path.join(trained_export["export"], "report.md")) as f:
        table = f.read()
    for name in rows:
        assert f"| {name} |" in table
    assert "benchmark tool ms (1 thr)" in table
    # The report names the variant that answered fastest here, and the CPU.
    fastest = min(("float32", "float16", "int8"), key=lambda v: rows[v]["latency_ms"]["1"])
    assert f"Fastest here on 1 thread(s): **{fastest}**" in table
    assert report["machine"] in table and "cores" in report["machine"]


def test_saved_model_cli_shows_and_runs_the_serving_model(trained_export):
    """TensorFlow's own tool reads the serving SavedModel and runs its `tokenize`."""
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    serving = os.path.join(trained_export["export"], "serving", "1")
    shown = subprocess.run(
        [cli, "show", "--dir", serving, "--all"], capture_output=True, text=True, timeout=300
    )
    assert shown.returncode == 0, shown.stderr[-2000:]
    for signature in ("serving_default", "tensors", "single", "tokenize"):
        assert f"signature_def['{signature}']" in shown.stdout
    assert "image_bytes" in shown.stdout and "dtype: DT_STRING" in shown.stdout
    ran = subprocess.run(
        [
            cli,
            "run",
            "--dir",
            serving,
            "--tag_set",
            "serve",
            "--signature_def",
            "tokenize",
            "--input_exprs",
            'questions=[b"what is the shape of the red object?"]',
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    with open(os.path.join(trained_export["run"], "assets", "tokenizer", "vocabulary.txt")) as f:
        vocabulary = f.read().splitlines()
    words = "what is the shape of the red object".split()
    expected = [vocabulary.index(w) for w in words]
    assert " ".join(map(str, expected)) in " ".join(ran.stdout.replace("[", " ").split())


def test_dynamic_range_variant(trained_export, tmp_path):
    """int8 weights, float activations: builtin ops, small, close to Keras."""
    from simmim_tf.export.tflite_conversion import convert

    flatbuffer = convert(os.path.join(trained_export["export"], "saved_model"), "dynamic")
    (tmp_path / "model_dynamic.tflite").write_bytes(flatbuffer)
    os.symlink(
        os.path.join(trained_export["export"], "simmim_meta.json"), tmp_path / "simmim_meta.json"
    )
    ops = read_ops(flatbuffer)
    assert non_builtin_ops(ops) == []
    assert "INT8" in {t.type for op in ops for t in op.inputs if t and t.is_const}
    float32 = os.path.join(trained_export["export"], "model_float32.tflite")
    assert len(flatbuffer) < 0.5 * os.path.getsize(float32)
    keras_probs, lite = _keras_and_tflite(
        {**trained_export, "export": str(tmp_path)}, "dynamic", 40
    )
    agreement = np.mean(keras_probs.argmax(-1) == lite.argmax(-1))
    print(f"dynamic: argmax agreement with Keras {agreement:.3f}, {len(flatbuffer)} bytes")
    assert agreement >= 0.95, agreement


def test_int8_mixed_keeps_all_but_the_matrix_products_in_float(trained_export, tmp_path):
    """Selective quantization: int8 in FULLY_CONNECTED and CONV_2D, float
    elsewhere; close to Keras. An op type the model lacks is named, not
    ignored."""
    from simmim_tf.errors import SimMIMInputError
    from simmim_tf.export.tflite_conversion import (
        check_float_ops_present,
        convert,
        representative_samples,
    )

    model = load_run(trained_export["run"])
    tokenizer = model.preprocessor.question_tokenizer()
    samples = representative_samples(
        trained_export["data"], tokenizer, model.backbone.image_size, 50
    )
    flatbuffer = convert(
        os.path.join(trained_export["export"], "saved_model"), "int8_mixed", samples
    )
    ops = read_ops(flatbuffer)
    assert non_builtin_ops(ops) == []
    output_types = lambda name: {op.outputs[0].type for op in ops if op.name == name}  # noqa: E731
    for name in ("SOFTMAX", "BATCH_MATMUL", "MEAN", "RSQRT"):
        assert output_types(name) == {"FLOAT32"}, name
    assert output_types("FULLY_CONNECTED") == output_types("CONV_2D") == {"INT8"}
    (tmp_path / "model_int8_mixed.tflite").write_bytes(flatbuffer)
    count = len(load_split(trained_export["data"], "test"))
    keras_probs, lite = _keras_and_tflite(
        {**trained_export, "export": str(tmp_path)}, "int8_mixed", count
    )
    # The bars of full int8 above. An overall bar alone (0.92 on 100
    # questions) failed on an AVX2 CPU's fixture at 0.91, where AVX-512
    # ones had given 0.95; on all 600 it agreed on 93.2%, and on 100% of
    # the 304 decided questions (2026-12-07): the answers it changed were
    # near ties.
    _assert_agrees_where_decided(keras_probs, lite, "int8_mixed")
    with pytest.raises(SimMIMInputError, match=r"\['CONV_3D'\]: no such op in this model"):
        check_float_ops_present(flatbuffer, ["SOFTMAX", "CONV_3D"])


def test_two_stage_answers_as_the_single_model(trained_export, tmp_path):
    """Image encoder once, answer model per question: the same probabilities."""
    from simmim_tf.edge import EdgePredictor, TwoStagePredictor
    from simmim_tf.export.two_stage_export import export_two_stage

    model = load_run(trained_export["run"])
    tokenizer = model.preprocessor.question_tokenizer()
    os.symlink(
        os.path.join(trained_export["export"], "simmim_meta.json"), tmp_path / "simmim_meta.json"
    )
    sizes = export_two_stage(model, str(tmp_path), tokenizer.sequence_length, ("float32",))
    assert set(sizes) == {"model_float32_encode_image.tflite", "model_float32_answer.tflite"}
    for name in sizes:
        assert non_builtin_ops(read_ops(str(tmp_path / name))) == []
    single = EdgePredictor(os.path.join(trained_export["export"], "model_float32.tflite"))
    two_stage = TwoStagePredictor(str(tmp_path), "float32")
    test = load_split(trained_export["data"], "test")
    for image_index in range(3):
        image = test.images[image_index]
        regions = two_stage.encode(image)  # once per picture
        rows, cols = single.grid_shape
        assert regions.shape == (1, rows * cols, model.backbone.hidden_dim)
        questions = [q for q, i in zip(test.questions, test.image_index, strict=True)]
        questions = [
            q for q, i in zip(questions, test.image_index, strict=True) if i == image_index
        ]
        for question in questions[:4]:
            a, b = single.predict(image, question), two_stage.predict(regions, question)
            assert a.answer == b.answer
            np.testing.assert_allclose([p for _, p in a.top_k], [p for _, p in b.top_k], atol=1e-5)
            np.testing.assert_allclose(a.attention_map, b.attention_map, atol=1e-5)
