"""A run (preset) folder → the SavedModels, the TFLite variants and the edge
runtime's sidecar metadata: `simmim-tf export`.

The jobs live in their own modules: `serving_saved_model` (SavedModels),
`tflite_conversion` (variants, calibration, selective int8),
`two_stage_export` (image encoder and answer model apart).
"""

import json
import os
import shutil
import tempfile

from simmim_tf.atomic_files import write_atomically
from simmim_tf.console import step
from simmim_tf.edge.edge_predictor import META_FILE
from simmim_tf.export.gpu_compatibility import gpu_delegate_problems
from simmim_tf.export.quantization_aware import load_ranges, write_saved_model_with_ranges
from simmim_tf.export.serving_saved_model import write_saved_model
from simmim_tf.export.tflite_conversion import (
    CALIBRATED,
    FLOAT_OPS_IN_INT8,
    convert,
    representative_samples,
)
from simmim_tf.export.two_stage_export import export_two_stage
from simmim_tf.preprocessing.answer_vocabulary import AnswerVocabulary
from simmim_tf.training.run_config import RunConfig
from simmim_tf.training.runs import load_run

FORMATS = ("saved_model", "tflite")


def export_run(
    run_dir,
    out_dir,
    data_dir=None,
    variants=("float32", "int8"),
    calibration_size=200,
    two_stage=(),
    formats=FORMATS,
    int8_float_ops=FLOAT_OPS_IN_INT8,
):
    """Writes, for the `formats` named:

    - saved_model: OUT/saved_model (numeric signatures, the conversion
      source) and OUT/serving/1 (string signatures, for TF Serving);
    - tflite: OUT/model_<variant>.tflite and OUT/simmim_meta.json; with
      `two_stage` (variants), also the files of `export_two_stage`. Without
      saved_model, the conversion source goes to a temporary folder.
      `int8_float_ops`: the op types the int8 model keeps in float.

    Returns {"files": {name: bytes}, "gpu_delegate_problems": {variant: [...]}}.
    """
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise ValueError(f"unknown export format(s) {unknown or formats}; choose from {FORMATS}")
    model = load_run(run_dir)
    tokenizer = model.preprocessor.question_tokenizer()
    answers = AnswerVocabulary(model.preprocessor.answers)
    if data_dir is None:
        data_dir = RunConfig.load(os.path.join(run_dir, "run_config.json")).data
    os.makedirs(out_dir, exist_ok=True)
    report = {"files": {}, "gpu_delegate_problems": {}}
    with tempfile.TemporaryDirectory() as scratch:
        with step("writing the SavedModel"):
            if "saved_model" in formats:
                saved_model = _write_saved_models(model, tokenizer, answers, out_dir)
            else:  # only the conversion source, thrown away afterwards
                saved_model = os.path.join(scratch, "saved_model")
                write_saved_model(model, tokenizer, answers, saved_model)
        if "tflite" in formats:
            samples = None
            if set(CALIBRATED) & set(variants):
                size = model.backbone.image_size
                samples = representative_samples(data_dir, tokenizer, size, calibration_size)
            for variant in variants:
                source = saved_model
                if variant == "int8" and load_ranges(run_dir):
                    source = _with_ranges(model, run_dir, tokenizer, answers, scratch)
                with step(f"converting {variant}"):
                    flatbuffer = convert(source, variant, samples, float_ops=int8_float_ops)
                path = os.path.join(out_dir, f"model_{variant}.tflite")
                write_atomically(path, flatbuffer)
                report["files"][os.path.basename(path)] = len(flatbuffer)
                if variant in ("float32", "float16"):
                    report["gpu_delegate_problems"][variant] = gpu_delegate_problems(flatbuffer)
            _write_meta(model, tokenizer, answers, out_dir, int8_float_ops)
            if two_stage:
                with step(f"exporting the two-stage models ({', '.join(two_stage)})"):
                    sizes = export_two_stage(model, out_dir, tokenizer.sequence_length, two_stage)
                report["files"].update(sizes)
    return report


def _with_ranges(model, run_dir, tokenizer, answers, scratch):
    """The conversion source of a quantization-aware run's int8 model: its
    fake-quant ops, and so its ranges, go to the converter
    (quantization_aware.py)."""
    source = os.path.join(scratch, "saved_model_with_ranges")
    write_saved_model_with_ranges(model, *load_ranges(run_dir), tokenizer, answers, source)
    return source


def _write_saved_models(model, tokenizer, answers, out_dir):
    """OUT/saved_model and OUT/serving/1, each written whole, then renamed
    into place. Returns the path of OUT/saved_model."""
    saved_model = os.path.join(out_dir, "saved_model")
    serving = os.path.join(out_dir, "serving", "1")  # TF Serving: <base>/<version>/
    for path, preprocessing in ((saved_model, False), (serving, True)):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp_dir = tempfile.mkdtemp(dir=os.path.dirname(path), prefix=".saved_model.")
        write_saved_model(model, tokenizer, answers, tmp_dir, preprocessing)
        shutil.rmtree(path, ignore_errors=True)
        os.replace(tmp_dir, path)
    return saved_model


def _write_meta(model, tokenizer, answers, out_dir, int8_float_ops=FLOAT_OPS_IN_INT8):
    """OUT/simmim_meta.json: what the edge runtime needs beside the .tflite."""
    meta = {
        "tokenizer": tokenizer.get_config(),
        "answers": answers.answers,
        "image_size": model.backbone.image_size,
        "int8_float_ops": list(int8_float_ops),
        "grid_shape": list(model.backbone.grid_shape),
        "inputs": {
            "images": "float32 (1, S, S, 3), pixel values 0..255",
            "token_ids": "int32 (1, L)",
        },
        "outputs": {
            "probabilities": "(1, num_answers)",
            "visual_attention": "(1, heads, L, regions), regions row-major on grid_shape",
        },
    }
    write_atomically(os.path.join(out_dir, META_FILE), json.dumps(meta, indent=1))
