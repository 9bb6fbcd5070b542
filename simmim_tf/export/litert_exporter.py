"""Run folder → SavedModel + TFLite float32 / float16 / int8 + sidecar metadata.

What worked with TF 2.21 / Keras 3.15 (and what did not):
- `keras.export.ExportArchive` with batch-1 `tf.TensorSpec`s gives static
  shapes, which the GPU delegate needs; `model.export` relaxes the batch to
  None even for `batch_size=1` inputs.
- `TFLiteConverter.from_saved_model` then converts with a representative
  dataset; `from_keras_model` failed in int8 calibration on attention
  (RESHAPE element-count mismatch).
- Builtin ops only (no SELECT_TF_OPS): a model needing Flex ops fails here,
  at conversion, instead of later on the device.
"""

import json
import os
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from simmim_tf.data.vqa_dataset import load_split
from simmim_tf.errors import SimMIMInputError
from simmim_tf.export.gpu_compatibility import gpu_delegate_problems
from simmim_tf.export.tflite_model_ops import non_builtin_ops, read_ops
from simmim_tf.preprocessing.tf_image_decoder import decode_image
from simmim_tf.preprocessing.tf_question_tokenizer import TFQuestionTokenizer
from simmim_tf.training.run_config import RunConfig
from simmim_tf.training.vqa_trainer import load_run

META_FILE = "simmim_meta.json"
# float32 / float16 (GPU delegate); dynamic: int8 weights, float activations,
# no calibration; int8: integer model, calibrated. No int16x8: TF 2.21's
# 16x8 calibration fails on the int32 token-id input ("Max and min for
# dynamic tensors should be recorded during calibration: Failed for tensor
# single_token_ids:0"), and through the quantization debugger (which keeps
# ONE_HOT in float) it silently produces int8 instead.
# int8_mixed: calibrated int8 in the matrix products only (FULLY_CONNECTED
# and CONV_2D: weights, inputs and outputs), every other op in float; for
# CPUs, beside dynamic (README's int8 table).
VARIANTS = ("float32", "float16", "dynamic", "int8", "int8_mixed")
CALIBRATED = ("int8", "int8_mixed")
# Ops left in float in the int8 model by default (see `_quantize_int8`).
FLOAT_OPS_IN_INT8 = ("ONE_HOT",)
INT8_OPS_IN_MIXED = ("FULLY_CONNECTED", "CONV_2D")


def serving_function(model):
    """(images float32 0..255, token_ids int32) → probabilities and visual attention.

    Images come in as float32 because the GPU delegate has no uint8→float
    CAST; the padding mask is computed in the graph from id 0.
    """

    def serve(images, token_ids):
        out = model.answer_with_attention(
            {"images": images, "token_ids": token_ids, "padding_mask": ops.not_equal(token_ids, 0)}
        )
        return {
            "probabilities": ops.softmax(out["logits"], axis=-1),
            "visual_attention": out["visual_attention"],  # (batch, heads, tokens, regions)
        }

    return serve


def preprocessing_endpoints(model, serve, tokenizer, answers, top_k=3):
    """`serving_default` (encoded images and question strings in, answers
    out) and `tokenize` (question strings to ids), preprocessing in core TF
    ops only, so that stock TensorFlow Serving runs them.

    Returns (tracked modules, {endpoint name: (function, input signature)}).
    """
    size = model.backbone.image_size
    rows, cols = model.backbone.grid_shape
    top_k = min(top_k, len(answers))
    tf_tokenizer = TFQuestionTokenizer(tokenizer)
    answer_strings = tf.constant(answers.answers)

    def answer(image_bytes, questions):
        images = tf.map_fn(
            lambda data: tf.cast(decode_image(data, size), tf.float32),
            image_bytes,
            fn_output_signature=tf.TensorSpec((size, size, 3), tf.float32),
        )
        token_ids, mask = tf_tokenizer(questions)
        tf.debugging.assert_positive(
            tf.reduce_sum(tf.cast(mask, tf.int32), axis=1),
            message="empty question: every question needs at least one word",
        )
        out = serve(images, token_ids)
        best = tf.math.top_k(out["probabilities"], k=top_k)
        # Where the question looks: mean over heads and real words, as
        # simmim_tf.explanation.visual_map computes it from the same tensor.
        mask = tf.cast(mask, tf.float32)[:, tf.newaxis, :, tf.newaxis]  # (batch, 1, tokens, 1)
        weights = tf.reduce_sum(out["visual_attention"] * mask, axis=2)  # (batch, heads, regions)
        weights = tf.reduce_mean(weights, axis=1)
        weights /= tf.maximum(tf.reduce_sum(weights, axis=-1, keepdims=True), 1e-9)
        return {
            "answers": tf.gather(answer_strings, best.indices),  # (batch, k), best first
            "probabilities": best.values,
            "attention_map": tf.reshape(weights, (-1, rows, cols)),
            "token_ids": token_ids,
        }

    def tokenize(questions):
        token_ids, padding_mask = tf_tokenizer(questions)
        return {"token_ids": token_ids, "padding_mask": padding_mask}

    endpoints = {
        "serving_default": (
            answer,
            [
                tf.TensorSpec((None,), tf.string, name="image_bytes"),
                tf.TensorSpec((None,), tf.string, name="questions"),
            ],
        ),
        "tokenize": (tokenize, [tf.TensorSpec((None,), tf.string, name="questions")]),
    }
    return [tf_tokenizer], endpoints


def write_saved_model(model, tokenizer, answers, path, preprocessing=False):
    """SavedModel with, by default (the conversion source, numeric only):

    serving_default  images float32 (batch, S, S, 3), token_ids int32 (batch, L)
                     -> probabilities, visual_attention
    single           the same with batch 1 (static shapes, for TFLite)

    and with `preprocessing=True` (for TF Serving; TFLite has no builtin
    hash-table op, so the conversion source leaves the string ones out):

    serving_default  image_bytes string (batch,) PNG/JPEG, questions string (batch,)
                     -> answers (batch, 3) best first, probabilities (batch, 3),
                        attention_map (batch, rows, cols), token_ids
    tensors          the numeric serving_default above (preprocessed tensors)
    tokenize         questions string (batch,) -> token_ids, padding_mask
    """
    size = model.backbone.image_size
    archive = keras.export.ExportArchive()
    archive.track(model)
    serve = serving_function(model)
    numeric = "tensors" if preprocessing else "serving_default"
    for name, batch in ((numeric, None), ("single", 1)):
        archive.add_endpoint(
            name,
            serve,
            input_signature=[
                tf.TensorSpec((batch, size, size, 3), tf.float32, name="images"),
                tf.TensorSpec((batch, tokenizer.sequence_length), tf.int32, name="token_ids"),
            ],
        )
    if preprocessing:
        modules, endpoints = preprocessing_endpoints(model, serve, tokenizer, answers)
        # The lookup table is a resource of the SavedModel: tracked, it is saved.
        archive._tf_trackable.preprocessing = modules
        for name, (function, signature) in endpoints.items():
            archive.add_endpoint(name, function, input_signature=signature)
    archive.write_out(path, verbose=False)


TWO_STAGE_VARIANTS = ("float32", "float16", "dynamic")


def export_two_stage(model, out_dir, sequence_length, variants=("float32",)):
    """Two .tflite files per variant for many questions about one picture:

    model_<variant>_encode_image.tflite  images float32 (1, S, S, 3) -> regions
    model_<variant>_answer.tflite        regions, token_ids (1, L)
                                         -> probabilities, visual_attention

    The image encoder runs once per picture; each further question runs the
    answer model alone (`simmim_tf.edge.TwoStagePredictor`). Variants without
    calibration only: a calibrated answer model would need regions as its
    representative data. Returns {file name: bytes}.
    """
    unknown = sorted(set(variants) - set(TWO_STAGE_VARIANTS))
    if unknown:
        raise ValueError(f"two-stage variants are {TWO_STAGE_VARIANTS}; got {unknown}")
    size = model.backbone.image_size
    rows, cols = model.backbone.grid_shape
    regions_spec = tf.TensorSpec((1, rows * cols, model.backbone.hidden_dim), tf.float32)

    def encode_image(images):
        return {"regions": model.backbone.encode_image(images)}

    def answer(regions, token_ids):
        out = model.answer_from_regions(regions, token_ids, ops.not_equal(token_ids, 0))
        return {
            "probabilities": ops.softmax(out["logits"], axis=-1),
            "visual_attention": out["visual_attention"],
        }

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "encode_image", encode_image, [tf.TensorSpec((1, size, size, 3), tf.float32, name="images")]
    )
    archive.add_endpoint(
        "answer",
        answer,
        [
            tf.TensorSpec(regions_spec.shape, tf.float32, name="regions"),
            tf.TensorSpec((1, sequence_length), tf.int32, name="token_ids"),
        ],
    )
    sizes = {}
    with tempfile.TemporaryDirectory(dir=out_dir) as saved_model:
        archive.write_out(saved_model, verbose=False)
        for variant in variants:
            for signature in ("encode_image", "answer"):
                flatbuffer = convert(saved_model, variant, signature=signature)
                name = f"model_{variant}_{signature}.tflite"
                _write_atomically(os.path.join(out_dir, name), flatbuffer)
                sizes[name] = len(flatbuffer)
    return sizes


def representative_samples(data_dir, tokenizer, image_size, count, seed=0):
    """`count` training questions with their images, as the converter wants them."""
    train = load_split(data_dir, "train", image_size=image_size)
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(train), size=min(count, len(train)), replace=False)
    samples = []
    for i in picks:
        ids, _ = tokenizer.encode(train.questions[i])
        samples.append(
            {
                "images": train.images[train.image_index[i]][None].astype(np.float32),
                "token_ids": ids[None],
            }
        )
    return samples


def convert(
    saved_model_dir, variant, samples=None, signature="single", float_ops=FLOAT_OPS_IN_INT8
):
    """One TFLite flatbuffer (bytes) of `variant` from one signature.

    `float_ops`: for int8, the TFLite op types kept in float (see
    `_quantize_int8`); the other variants ignore it.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {VARIANTS}")
    converter = tf.lite.TFLiteConverter.from_saved_model(
        saved_model_dir, signature_keys=[signature]
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if variant == "float32":
        flatbuffer = converter.convert()
    elif variant == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
        flatbuffer = converter.convert()
    elif variant == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # no representative data
        flatbuffer = converter.convert()
    elif variant == "int8":
        flatbuffer = _quantize_int8(converter, samples, float_ops)
    else:
        flatbuffer = _quantize_int8(converter, samples, mixed_float_ops(converter.convert()))
    flex = non_builtin_ops(read_ops(flatbuffer))
    if flex:
        raise RuntimeError(f"{variant} model needs non-builtin ops: {flex}")
    return flatbuffer


def _quantize_int8(converter, samples, float_ops):
    """int8 everywhere except the op types in `float_ops`.

    By default (`FLOAT_OPS_IN_INT8`) the ONE_HOT that expands the token ids
    (it has no weights) stays in float: TFLite's int8 ONE_HOT gave values
    off by ~125 quantization steps. On an earlier `make demo` model int8 then
    agrees with Keras on 94.7% of test answers instead of 40.3%
    (`benchmarks/tflite_agreement.py`). Keeping more ops in float is
    selective quantization: README's int8 table measures the choices. The
    denylist goes through the quantization debugger, TF's route for
    selective quantization; it calibrates once, as the converter would.
    """
    if not samples:
        raise ValueError("calibrated conversion needs representative samples")
    float_ops = [op.strip().upper() for op in float_ops if op.strip()]
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: iter(samples)
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
        tf.lite.OpsSet.TFLITE_BUILTINS,
    ]
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter,
        debug_dataset=None,
        debug_options=tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=float_ops),
    )
    flatbuffer = debugger.get_nondebug_quantized_model()
    check_float_ops_present(flatbuffer, float_ops)
    return flatbuffer


def mixed_float_ops(float_flatbuffer):
    """The op types `int8_mixed` keeps in float: every op of the float model
    that computes in float, but the matrix products (`INT8_OPS_IN_MIXED`)."""
    computing = {
        op.name for op in read_ops(float_flatbuffer) if any(t.type == "FLOAT32" for t in op.outputs)
    }
    return tuple(sorted(computing - set(INT8_OPS_IN_MIXED)))


def check_float_ops_present(flatbuffer, float_ops):
    """The debugger ignores op types it does not find: say so instead."""
    present = {op.name for op in read_ops(flatbuffer)}
    absent = sorted(set(float_ops) - present)
    if absent:
        raise SimMIMInputError(
            f"int8 float ops {absent}: no such op in this model; its ops are {sorted(present)}"
        )


def _write_atomically(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    os.replace(tmp, path)


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
    model, tokenizer, answers = load_run(run_dir)
    if data_dir is None:
        data_dir = RunConfig.load(os.path.join(run_dir, "run_config.json")).data
    os.makedirs(out_dir, exist_ok=True)
    report = {"files": {}, "gpu_delegate_problems": {}}
    with tempfile.TemporaryDirectory() as scratch:
        if "saved_model" in formats:
            saved_model = _write_saved_models(model, tokenizer, answers, out_dir)
        else:  # only the conversion source, thrown away afterwards
            saved_model = os.path.join(scratch, "saved_model")
            write_saved_model(model, tokenizer, answers, saved_model)
        if "tflite" in formats:
            samples = None
            if set(CALIBRATED) & set(variants):
                samples = representative_samples(
                    data_dir, tokenizer, model.backbone.image_size, calibration_size
                )
            for variant in variants:
                flatbuffer = convert(saved_model, variant, samples, float_ops=int8_float_ops)
                path = os.path.join(out_dir, f"model_{variant}.tflite")
                _write_atomically(path, flatbuffer)
                report["files"][os.path.basename(path)] = len(flatbuffer)
                if variant in ("float32", "float16"):
                    report["gpu_delegate_problems"][variant] = gpu_delegate_problems(flatbuffer)
            _write_meta(model, tokenizer, answers, out_dir, int8_float_ops)
            if two_stage:
                sizes = export_two_stage(model, out_dir, tokenizer.sequence_length, two_stage)
                report["files"].update(sizes)
    return report


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
    _write_atomically(os.path.join(out_dir, META_FILE), json.dumps(meta, indent=1))
