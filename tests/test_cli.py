"""The command line end to end (on the shared trained run) and its errors."""

import io
import json
import os

import keras
import numpy as np
import pytest
from PIL import Image

from simmim_tf.cli import main


def test_evaluate_writes_eval_json(trained_export, capsys):
    assert main(["evaluate", "--run", trained_export["run"], "--data", trained_export["data"]]) == 0
    result = json.load(open(os.path.join(trained_export["run"], "eval.json")))["accuracy"]
    assert set(result) == {"overall", "non_relational", "relational", "by_question_type"}
    assert result["overall"]["questions"] == 30 * 20
    types = result["by_question_type"]
    assert set(types) == {"shape", "horizontal", "vertical", "closest", "furthest", "count"}
    relational = [types[t] for t in ("closest", "furthest", "count")]
    assert sum(t["questions"] for t in relational) == result["relational"]["questions"]
    correct = sum(t["accuracy"] * t["questions"] for t in relational)
    assert correct == pytest.approx(
        result["relational"]["accuracy"] * result["relational"]["questions"]
    )
    out = capsys.readouterr().out
    assert "non_relational" in out and "closest" in out
    # What the package is for: the test-size model (270 images, 4 epochs)
    # has learnt where objects lie. Each of these questions' commonest
    # answer is right about half the time; a model that ignores the image
    # (an answer head fed zeros, a pipeline that scrambles images) stays
    # there.
    for question_type in ("horizontal", "vertical"):
        assert types[question_type]["accuracy"] >= 0.85, (question_type, types[question_type])


def test_the_accuracy_bar_fails_a_model_that_ignores_the_image(trained_export):
    """The bar above is one a broken model cannot pass: the same run with
    its answer head fed zeros (the backbone's final norm zeroed) gives one
    answer to every question of a type."""
    from simmim_tf.evaluation import accuracy_by_family
    from simmim_tf.training.run_evaluation import load_run_and_split, predict_answers

    model, test, _ = load_run_and_split(trained_export["run"], trained_export["data"], count=1)
    norm = model.backbone.get_layer("final_norm")
    norm.set_weights([np.zeros_like(w) for w in norm.get_weights()])
    predicted = predict_answers(model, test)
    assert len(set(predicted)) == 1  # the head sees the same zeros for every question
    types = accuracy_by_family(
        predicted, test.answers, test.families, test.human_answers, test.question_types
    )["by_question_type"]
    for question_type in ("horizontal", "vertical"):
        assert types[question_type]["accuracy"] < 0.85, (question_type, types[question_type])


def test_evaluate_tflite(trained_export):
    model = os.path.join(trained_export["export"], "model_int8.tflite")
    assert main(["evaluate", "--model", model, "--data", trained_export["data"]]) == 0
    result = json.load(open(model.replace(".tflite", ".eval.json")))["accuracy"]
    assert result["overall"]["questions"] == 600


def test_predict_and_explain(trained_export, tmp_path, capsys):
    image = os.path.join(trained_export["data"], "images", "000299.png")
    heatmap = str(tmp_path / "explain.png")
    assert (
        main(
            [
                "predict",
                "--model",
                os.path.join(trained_export["export"], "model_int8.tflite"),
                "--image",
                image,
                "--question",
                "what is the shape of the red object?",
                "--explain",
                heatmap,
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    answer, probability = printed.splitlines()[0].split(" (")
    assert (
        answer
        in json.load(open(os.path.join(trained_export["export"], "simmim_meta.json")))["answers"]
    )
    assert 0 < float(probability.rstrip("%)")) <= 100
    picture = np.asarray(Image.open(heatmap).convert("RGB"), np.float32)
    assert picture.shape[0] > 200 and picture.std() > 10  # a real picture, not a blank one
    # The int8 model gives the anchor too, and the picture has its panel:
    # image, visual attention, anchor.
    assert "and the relational anchor" in printed
    assert picture.shape[1] > 2.5 * picture.shape[0]


def test_predict_prints_only_its_answers(trained_export):
    """From the command line LiteRT's "INFO: Created TensorFlow Lite XNNPACK
    delegate for CPU." and every other native line stay off the terminal."""
    import subprocess
    import sys

    command = [
        "predict",
        "--model",
        os.path.join(trained_export["export"], "model_int8.tflite"),
        "--image",
        os.path.join(trained_export["data"], "images", "000000.png"),
        "--question",
        "is the red object on the left?",
        "--top-k",
        "2",
    ]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root}
    out = subprocess.run(
        [sys.executable, "-m", "simmim_tf.cli", *command], capture_output=True, text=True, env=env
    )
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert len(out.stdout.splitlines()) == 2  # the two answers, nothing else
    verbose = subprocess.run(
        [sys.executable, "-m", "simmim_tf.cli", "--verbose", *command],
        capture_output=True,
        text=True,
        env=env,
    )
    assert "XNNPACK delegate" in verbose.stderr  # the line the filter removes


def _predict(trained_export, **overrides):
    args = {
        "--model": os.path.join(trained_export["export"], "model_float32.tflite"),
        "--image": os.path.join(trained_export["data"], "images", "000000.png"),
        "--question": "is the red object on the left?",
        **overrides,
    }
    return main(["predict", *[x for kv in args.items() for x in kv]])


@pytest.mark.parametrize(
    "make_bad, message",
    [
        (lambda d: {"--question": "  ?"}, "empty question"),
        (lambda d: {"--model": os.path.join(d, "nope.tflite")}, "nope.tflite: not found"),
        (lambda d: {"--image": os.path.join(d, "missing.png")}, "missing.png: not found"),
        (lambda d: {"--image": _write(d, "text.png", b"hello")}, "not a readable PNG or JPEG"),
        (lambda d: {"--image": _write(d, "cut.png", _png_bytes()[:60])}, "not a readable"),
    ],
)
def test_bad_input_gives_one_line_error(trained_export, tmp_path, capsys, make_bad, message):
    assert _predict(trained_export, **make_bad(str(tmp_path))) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


@pytest.mark.parametrize(
    "command",
    [
        ["train", "--data", "NOPE", "--out", "OUT"],
        ["evaluate", "--run", "NOPE", "--data", "."],
        ["export", "--run", "NOPE", "--out", "OUT"],
        ["predict", "--model", "NOPE", "--image", "x.png", "--question", "what?"],
    ],
)
def test_a_wrong_path_fails_at_once_in_one_line(tmp_path, command):
    """Before TensorFlow loads: a fresh process answers in well under 1.5 s
    (TensorFlow's import alone takes longer), leaving nothing behind."""
    import subprocess
    import sys
    import time

    command = [str(tmp_path / c) if c in ("NOPE", "OUT") else c for c in command]
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "simmim_tf.cli", *command], capture_output=True, text=True
    )
    elapsed = time.perf_counter() - start
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == f"error: --{command[1][2:]} {tmp_path / 'NOPE'}: not found\n"
    assert "tensorflow" not in out.stderr.lower()
    assert elapsed < 1.5, elapsed
    assert not os.path.exists(tmp_path / "OUT")


def _write(d, name, data):
    path = os.path.join(d, name)
    open(path, "wb").write(data)
    return path


def _png_bytes():
    buffer = io.BytesIO()
    Image.new("RGB", (75, 75), (255, 0, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_unknown_word_is_answered_and_named(trained_export, capsys):
    assert _predict(trained_export, **{"--question": "is the zorblax object on the left?"}) == 0
    out = capsys.readouterr().out
    assert "words the model does not know, read as unknown: 'zorblax'" in out


@pytest.mark.parametrize("mode, size", [("L", (75, 75)), ("RGBA", (150, 120)), ("P", (40, 40))])
def test_images_as_people_have_them_are_answered(trained_export, tmp_path, capsys, mode, size):
    path = str(tmp_path / f"{mode}.png")
    Image.open(os.path.join(trained_export["data"], "images", "000000.png")).resize(size).convert(
        mode
    ).save(path)
    assert _predict(trained_export, **{"--image": path}) == 0
    answer = capsys.readouterr().out.splitlines()[0].split(" (")[0]
    assert (
        answer
        in json.load(open(os.path.join(trained_export["export"], "simmim_meta.json")))["answers"]
    )


def test_bad_data_names_file_and_line(tmp_path, capsys):
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "questions.jsonl").write_text('{"image": "images/a.png", "question": "q?"\n')
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "questions.jsonl:1: not valid JSON" in err


def test_help_explains_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("data", "pretrain", "train", "evaluate", "export", "predict"):
        assert command in out


def test_export_format_saved_model_only(trained_export, tmp_path, capsys):
    out = str(tmp_path / "exp")
    args = ["export", "--run", trained_export["run"], "--out", out]
    assert main([*args, "--format", "saved_model"]) == 0
    assert os.path.isfile(os.path.join(out, "serving", "1", "saved_model.pb"))
    assert os.path.isfile(os.path.join(out, "saved_model", "saved_model.pb"))
    assert not [f for f in os.listdir(out) if f.endswith(".tflite")]
    assert main([*args, "--format", "onnx"]) == 2
    assert "--format: choose from ('saved_model', 'tflite')" in capsys.readouterr().err
    assert main([*args, "--format", "saved_model", "--report"]) == 2
    assert "add tflite to --format" in capsys.readouterr().err


def test_export_refuses_an_unknown_int8_float_op(trained_export, tmp_path, capsys):
    args = ["export", "--run", trained_export["run"], "--out", str(tmp_path / "exp")]
    assert main([*args, "--int8-float-ops", "ONE_HOT,SOFTMAXX"]) == 2
    assert "--int8-float-ops: ['SOFTMAXX'] not TFLite builtin op names" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "exp")


def test_quantization_aware_writes_a_run_that_exports(trained_export, tmp_path, capsys):
    from simmim_tf.training.runs import load_run

    out = str(tmp_path / "qat")
    args = ["quantization-aware", "--run", trained_export["run"], "--out", out]
    assert main([*args, "--steps", "3", "--calibration-size", "40"]) == 0
    assert "3 quantization-aware steps" in capsys.readouterr().out
    with open(os.path.join(out, "quantization_aware.json")) as f:
        record = json.load(f)
    assert record["steps"] == 3 and record["fake_quantized_tensors"] > 100
    assert record["left_out_questions"] == 0 and record["scope"] == "converter"
    tuned = load_run(out)
    original = load_run(trained_export["run"])
    assert tuned.preprocessor.answers == original.preprocessor.answers
    assert tuned.get_config() == original.get_config()
    changed = [
        not np.array_equal(a, b)
        for a, b in zip(tuned.get_weights(), original.get_weights(), strict=True)
    ]
    assert any(changed)
    assert main(["quantization-aware", "--run", out, "--out", out]) == 2
    assert "give a new folder, not the run itself" in capsys.readouterr().err
    _export_takes_the_saved_ranges(out, trained_export["data"], tmp_path)
    assert main([*args, "--steps", "0"]) == 2
    assert "--steps must be at least 1" in capsys.readouterr().err


def test_quantization_aware_with_the_training_losses(trained_export, tmp_path, capsys):
    """--losses training fits the training wrapper, anchor loss included
    (the tiny preset has relational attention; the data has scenes), under
    fake quantization, and writes a run with its ranges."""
    from simmim_tf.errors import SimMIMInputError
    from simmim_tf.export.quantization_aware import fine_tune_run
    from simmim_tf.training.runs import load_run

    out = str(tmp_path / "qat_training")
    args = ["quantization-aware", "--run", trained_export["run"], "--out", out]
    assert main([*args, "--steps", "2", "--calibration-size", "20", "--losses", "training"]) == 0
    with open(os.path.join(out, "quantization_aware.json")) as f:
        record = json.load(f)
    assert record["losses"] == "training" and record["anchor_loss"] is True
    assert record["steps"] == 2 and np.isfinite(record["loss"])
    assert os.path.exists(os.path.join(out, "quantization_ranges.json"))
    tuned, original = load_run(out), load_run(trained_export["run"])
    assert len(tuned.get_weights()) == len(original.get_weights())
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(tuned.get_weights(), original.get_weights(), strict=True)
    )
    with pytest.raises(SimMIMInputError, match="losses 'all': choose from"):
        fine_tune_run(trained_export["run"], str(tmp_path / "other"), losses="all")


def test_quantization_aware_distills_the_float_model(trained_export, tmp_path, capsys):
    """--losses distill: the targets are the run's own float answer
    distribution for each batch's questions, and a run comes out."""
    from simmim_tf.export.quantization_aware import distillation_targets, training_dataset
    from simmim_tf.preprocessing.answer_vocabulary import AnswerVocabulary
    from simmim_tf.training.runs import load_run

    teacher = load_run(trained_export["run"])
    tokenizer = teacher.preprocessor.question_tokenizer()
    answers = AnswerVocabulary(teacher.preprocessor.answers)
    size = teacher.backbone.image_size
    plain, *_ = training_dataset(trained_export["data"], tokenizer, answers, size, 8)
    inputs, targets = next(iter(distillation_targets(plain.take(1), teacher)))
    want = keras.ops.softmax(teacher.predict(inputs, verbose=0))
    np.testing.assert_allclose(np.asarray(targets), np.asarray(want), atol=1e-5)
    assert targets.shape == (8, len(teacher.preprocessor.answers))
    out = str(tmp_path / "qat_distill")
    args = ["quantization-aware", "--run", trained_export["run"], "--out", out]
    assert main([*args, "--steps", "2", "--calibration-size", "20", "--losses", "distill"]) == 0
    with open(os.path.join(out, "quantization_aware.json")) as f:
        record = json.load(f)
    assert record["losses"] == "distill" and np.isfinite(record["loss"])
    assert os.path.exists(os.path.join(out, "quantization_ranges.json"))


def _export_takes_the_saved_ranges(run, data, tmp_path):
    """The int8 converter quantizes LayerNorm's 1/std on the run's saved
    ranges, not on its own calibration: widened ranges show in the model."""
    from ai_edge_litert.interpreter import Interpreter

    from simmim_tf.export import quantization_aware as qa
    from simmim_tf.export.tflite_model_ops import read_ops

    ranges, scope = qa.load_ranges(run)
    widened = {k: (2 * low, 2 * high) for k, (low, high) in ranges.items()}
    qa.save_ranges(run, widened, scope)
    export = str(tmp_path / "qat_export")
    args = ["export", "--run", run, "--out", export, "--data", data, "--quantize", "int8"]
    assert main([*args, "--format", "tflite", "--calibration-size", "40"]) == 0
    path = os.path.join(export, "model_int8.tflite")
    assert "FAKE_QUANT" not in {op.name for op in read_ops(path)}
    scales = np.array(
        [
            scale
            for t in Interpreter(model_path=path).get_tensor_details()
            for scale in t["quantization_parameters"]["scales"]
        ]
    )
    inv_std = [(low, high) for k, (low, high) in widened.items() if k.endswith("/inv_std")]
    found = [
        np.isclose(scales, (high - min(low, 0)) / 255, rtol=1e-4).any() for low, high in inv_std
    ]
    assert len(inv_std) > 5 and np.mean(found) > 0.8, found


def test_benchmarks_start_from_the_run_and_its_split(trained_export):
    from simmim_tf.training.run_evaluation import load_run_and_split, predict_answers

    model, test, inputs = load_run_and_split(trained_export["run"], trained_export["data"], count=7)
    assert inputs["images"].shape == (7, 75, 75, 3) and inputs["images"].dtype == np.uint8
    expected_ids = model.preprocessor.question_tokenizer().encode_batch(test.questions[:7])[0]
    np.testing.assert_array_equal(inputs["token_ids"], expected_ids)
    logits = model.predict(inputs, verbose=0)
    answers = [model.preprocessor.answers[i] for i in logits.argmax(-1)]
    assert answers == predict_answers(model, test.subset(np.arange(len(test)) < 7))


def test_help_shows_every_default():
    """Each option with a default says it in its --help line."""
    import argparse

    from simmim_tf.cli import build_parser

    def options(parser, command):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from options(sub, [*command, name])
            elif action.option_strings and action.default not in (None, False, "==SUPPRESS=="):
                yield " ".join(command), action

    silent = [
        f"{command} {action.option_strings[0]}"
        for command, action in options(build_parser(), [])
        if "default" not in (action.help or "")
    ]
    assert silent == []
