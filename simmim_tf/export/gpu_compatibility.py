"""Checks a float .tflite against what the TFLite GPU delegate accepts.

TF 2.21's `tf.lite.experimental.Analyzer.analyze(gpu_compatibility=True)`
passes models with ops the delegate refuses, so the rules are written out
here from `tensorflow/lite/tools/versioning/gpu_compatibility.cc`
(CheckGpuDelegateCompatibility), plus two of ours: every shape static, and
no tensor above 4 dimensions. Passing this check is necessary, not
sufficient: the real test is LiteRT's GPU accelerator on a device with a GPU.
"""

from ai_edge_litert import schema_py_generated as schema

from simmim_tf.export.tflite_model_ops import read_ops

# Ops the delegate accepts with no constraint beyond input/output counts.
_PLAIN = {
    "ADD",
    "AVERAGE_POOL_2D",
    "BATCH_MATMUL",
    "CONCATENATION",
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "DEPTH_TO_SPACE",
    "DEQUANTIZE",
    "FULLY_CONNECTED",
    "HARD_SWISH",
    "MAX_POOL_2D",
    "PACK",
    "PRELU",
    "QUANTIZE",
    "RELU",
    "RELU6",
    "RELU_N1_TO_1",
    "LEAKY_RELU",
    "RESHAPE",
    "RESIZE_BILINEAR",
    "RESIZE_NEAREST_NEIGHBOR",
    "SPACE_TO_DEPTH",
    "SPLIT",
    "SPLIT_V",
    "TILE",
    "TRANSPOSE",
    "TRANSPOSE_CONV",
    # One-argument elementwise.
    "ABS",
    "CEIL",
    "COS",
    "ELU",
    "EXP",
    "FLOOR",
    "GELU",
    "LOG",
    "LOGISTIC",
    "NEG",
    "RSQRT",
    "SIGN",
    "SIN",
    "SQRT",
    "SQUARE",
    "TANH",
    # Two-argument elementwise.
    "ATAN2",
    "DIV",
    "EQUAL",
    "FLOOR_DIV",
    "FLOOR_MOD",
    "GREATER",
    "GREATER_EQUAL",
    "LOGICAL_AND",
    "LESS",
    "LESS_EQUAL",
    "MAXIMUM",
    "MINIMUM",
    "NOT_EQUAL",
    "POW",
    "SQUARED_DIFFERENCE",
    "SUB",
}
_REDUCE = {"MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD"}
_FLOATS = {"FLOAT32", "FLOAT16"}


def _op_problem(op):
    """Why the delegate would refuse this op, or None."""
    name, ins = op.name, [t for t in op.inputs if t is not None]
    if name.startswith("CUSTOM"):
        return "custom or Flex op"
    if name in _PLAIN:
        return None
    check = _CHECKS.get(name)
    if check is None:
        return f"{name} is not supported by the GPU delegate"
    return check(name, ins, op)


# The delegate's conditions on the ops it takes with limits, one function
# each: (name, inputs, op) -> why it is refused, or None.


def _mul(name, ins, op):
    a, b = ins[0].shape, ins[1].shape
    if len(a) == len(b):
        pairs = list(zip(a, b, strict=True))
        if any(x < y for x, y in pairs) and any(y < x for x, y in pairs):
            return f"MUL where neither input covers the other ({a} × {b})"
    return None


def _reduce(name, ins, op):
    axes = ins[1]
    if not axes.is_const or axes.type != "INT32":
        return f"{name} needs constant int32 axes"
    return None


def _softmax(name, ins, op):
    options = schema.SoftmaxOptions()
    options.Init(op.options.Bytes, op.options.Pos)
    return None if options.Beta() == 1.0 else f"SOFTMAX with beta {options.Beta()}"


def _cast(name, ins, op):
    pair = (ins[0].type, op.outputs[0].type)
    ok = (
        (pair[0] == "BOOL" and pair[1] in _FLOATS)
        or (pair[0] in _FLOATS and pair[1] == "BOOL")
        or (pair[0] in {"FLOAT32", "INT32"} and pair[1] in {"FLOAT32", "INT32"})
    )
    return None if ok else f"CAST {pair[0]} → {pair[1]}"


def _gather(name, ins, op):
    if ins[0].type == "INT32":
        return "GATHER of int32 data"
    if len(ins[1].shape) != 1 or ins[1].type != "INT32":
        return f"GATHER with {len(ins[1].shape)}-D {ins[1].type} indices (needs 1-D int32)"
    return None


def _embedding_lookup(name, ins, op):
    if len(ins[0].shape) != 1:
        return f"EMBEDDING_LOOKUP with {len(ins[0].shape)}-D ids (needs 1-D)"
    if ins[1].type not in {"FLOAT32", "INT8", "INT4"}:
        return f"EMBEDDING_LOOKUP of {ins[1].type} values"
    return None


def _one_hot(name, ins, op):
    if ins[0].type != "INT32" or any(d != 1 for d in ins[0].shape[:-1][1:]):
        return "ONE_HOT needs int32 indices with only batch and last dims non-singleton"
    if not (ins[2].is_const and ins[3].is_const and ins[2].type == "FLOAT32"):
        return "ONE_HOT needs constant float on/off values"
    return None


def _select(name, ins, op):
    if (
        ins[0].type not in _FLOATS | {"BOOL"}
        or ins[1].type not in _FLOATS
        or ins[2].type not in _FLOATS
    ):
        return f"{name} on {ins[1].type} tensors (floats only)"
    return None


def _slice(name, ins, op):
    if len(ins[0].shape) not in (3, 4):
        return f"{name} of a {len(ins[0].shape)}-D tensor (3-D or 4-D only)"
    if name == "STRIDED_SLICE":
        options = schema.StridedSliceOptions()
        options.Init(op.options.Bytes, op.options.Pos)
        if options.EllipsisMask() or options.NewAxisMask() or options.ShrinkAxisMask():
            return "STRIDED_SLICE with ellipsis, new-axis or shrink-axis mask"
    return None


def _pad(name, ins, op):
    return None if len(ins[0].shape) in (3, 4) else f"{name} of a {len(ins[0].shape)}-D tensor"


_CHECKS = {
    "MUL": _mul,
    **{name: _reduce for name in _REDUCE},
    "SOFTMAX": _softmax,
    "CAST": _cast,
    "GATHER": _gather,
    "EMBEDDING_LOOKUP": _embedding_lookup,
    "ONE_HOT": _one_hot,
    "SELECT": _select,
    "SELECT_V2": _select,
    "SLICE": _slice,
    "STRIDED_SLICE": _slice,
    "PAD": _pad,
    "PADV2": _pad,
}


def gpu_delegate_problems(path_or_bytes):
    """A list of 'OP: why' strings; empty when every op passes."""
    problems = []
    ops = read_ops(path_or_bytes)
    # A float16 model stores constants as FLOAT16 behind a DEQUANTIZE; the
    # delegate folds those, so their outputs count as constants here.
    folded = {
        op.outputs[0].name
        for op in ops
        if op.name == "DEQUANTIZE" and op.inputs[0].is_const and op.inputs[0].type == "FLOAT16"
    }
    for op in ops:
        for t in op.inputs:
            if t is not None and t.name in folded:
                t.is_const = True
    for op in ops:
        why = _op_problem(op)
        if why:
            problems.append(f"{op.name}: {why}")
        for t in op.inputs + op.outputs:
            if t is None:
                continue
            if any(d < 0 for d in t.shape_signature):
                problems.append(f"{op.name}: dynamic shape {t.shape_signature} on {t.name}")
            if len(t.shape) > 4:
                problems.append(f"{op.name}: {len(t.shape)}-D tensor {t.name}")
    return sorted(set(problems))
