"""SavedModel → .tflite: the variants, int8 calibration and selective
quantization (which ops the int8 model keeps in float).

`TFLiteConverter.from_saved_model` converts with a representative dataset;
`from_keras_model` failed in int8 calibration on attention (RESHAPE
element-count mismatch). Builtin ops only (no SELECT_TF_OPS): a model
needing Flex ops fails here, at conversion, instead of later on the device.
"""

import numpy as np
import tensorflow as tf

from simmim_tf.data.vqa_dataset import load_split
from simmim_tf.errors import SimMIMInputError
from simmim_tf.export.tflite_model_ops import non_builtin_ops, read_ops

# float32 / float16 (GPU delegate); dynamic: int8 weights, float activations,
# no calibration; int8: integer model, calibrated. No int16x8: TF 2.21's
# 16x8 calibration fails on the int32 token-id input ("Max and min for
# dynamic tensors should be recorded during calibration: Failed for tensor
# single_token_ids:0"), and through the quantization debugger (which keeps
# ONE_HOT in float) it silently produces int8 instead.
# int8_mixed: calibrated int8 in the matrix products only (FULLY_CONNECTED
# and CONV_2D: weights, inputs and outputs), every other op in float; for
# CPUs, beside dynamic (docs/export.md's int8 table).
VARIANTS = ("float32", "float16", "dynamic", "int8", "int8_mixed")
CALIBRATED = ("int8", "int8_mixed")
# Ops left in float in the int8 model by default (see `_quantize_int8`).
FLOAT_OPS_IN_INT8 = ("ONE_HOT",)
INT8_OPS_IN_MIXED = ("FULLY_CONNECTED", "CONV_2D")


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
    selective quantization: docs/export.md's int8 table measures the choices. The
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
