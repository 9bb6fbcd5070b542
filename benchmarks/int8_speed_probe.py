"""How much faster full int8 gets on a CPU when the ops XNNPACK has no int8
kernel for leave the graph: a speed-only probe, no training.

ai-edge-litert's XNNPACK delegate takes int8 FULLY_CONNECTED, CONV_2D, ADD,
SUB, MUL, MEAN, SUM, TRANSPOSE and RESHAPE, not int8 RSQRT (every
LayerNorm), GELU, SOFTMAX, DIV, ABS or MAXIMUM, nor a BATCH_MATMUL whose
right-hand zero point is not 0; the ops it refuses run on TFLite's own
kernels between XNNPACK partitions (`benchmarks/xnnpack_partitions.py`).
The run's model is traced four ways:

  as trained     LayerNorm and GELU
  affine norm    each LayerNorm replaced by its per-channel affine
                 (x * gamma + beta: a batch-norm-style normalisation at
                 inference, once its statistics are folded)
  relu           each GELU replaced by ReLU (fused into the matrix product)
  both

Each is converted to float32 and to int8 (the export's calibration, 200
training questions) and timed on 1 thread with XNNPACK. The replaced
models' answers are meaningless (their weights were trained with LayerNorm
and GELU): the probe tells whether a model trained that way could make int8
faster than float32, before anyone trains one.

    python -m benchmarks.int8_speed_probe --run demo_out/run --data demo_out/data
"""

import argparse
import collections
import contextlib
import datetime
import os
import tempfile

import keras
from ai_edge_litert.interpreter import OpResolverType

from benchmarks.tflite_timing import median_ms
from benchmarks.xnnpack_partitions import op_counts
from simmim_tf import machine
from simmim_tf.export import tflite_conversion
from simmim_tf.export.serving_saved_model import write_saved_model
from simmim_tf.layers.layer_norm import LayerNorm
from simmim_tf.preprocessing.answer_vocabulary import AnswerVocabulary
from simmim_tf.training.runs import load_run

ARMS = {
    "as trained": (False, False),
    "affine norm": (True, False),
    "relu": (False, True),
    "affine norm + relu": (True, True),
}


@contextlib.contextmanager
def replaced(model, affine_norm, relu):
    """Within the block, LayerNorms are their affine and GELUs are ReLUs."""
    layers = list(model._flatten_layers())
    norms = [layer for layer in layers if affine_norm and isinstance(layer, LayerNorm)]
    gelus = [
        layer
        for layer in layers
        if relu and getattr(getattr(layer, "activation", None), "__name__", "") == "gelu"
    ]
    for norm in norms:
        object.__setattr__(norm, "call", lambda x, n=norm: x * n.gamma + n.beta)
    for layer in gelus:
        layer.activation = keras.activations.relu
    try:
        yield len(norms), len(gelus)
    finally:
        for norm in norms:
            object.__delattr__(norm, "call")
        for layer in gelus:
            layer.activation = keras.activations.gelu


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", required=True, help="trained run folder")
    parser.add_argument("--data", required=True, help="data folder (training split: calibration)")
    args = parser.parse_args()

    model = load_run(args.run)
    tokenizer = model.preprocessor.question_tokenizer()
    answers = AnswerVocabulary(model.preprocessor.answers)
    samples = tflite_conversion.representative_samples(
        args.data, tokenizer, model.backbone.image_size, 200
    )
    print(
        f"{args.run}; {datetime.date.today()}, {machine.describe()}; "
        "1 thread, median of 200 calls, XNNPACK on"
    )
    print(
        "| arm | replaced | float32 ms | int8 ms | int8 / float32 | int8 ops | int8 XNNPACK "
        "partitions | int8 ops outside XNNPACK's int8 set |"
    )
    print("|---|---|---|---|---|---|---|---|")
    scratch = tempfile.mkdtemp()
    for name, (affine_norm, relu) in ARMS.items():
        saved_model = os.path.join(scratch, name.replace(" ", "_").replace("+", "and"))
        with replaced(model, affine_norm, relu) as (num_norms, num_gelus):
            write_saved_model(model, tokenizer, answers, saved_model)
        ms = {}
        for variant in ("float32", "int8"):
            path = f"{saved_model}_{variant}.tflite"
            with open(path, "wb") as f:
                f.write(tflite_conversion.convert(saved_model, variant, samples))
            ms[variant] = median_ms(path, runs=200, warmup=20)
        ops = op_counts(path, OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        outside = collections.Counter(
            {op: n for op, n in ops.items() if op in ("RSQRT", "GELU", "SOFTMAX", "DIV", "ABS")}
        )
        outside["BATCH_MATMUL"] = ops.get("BATCH_MATMUL", 0)
        partitions = op_counts(path, OpResolverType.AUTO).get("DELEGATE", 0)
        print(
            f"| {name} | {num_norms} norms, {num_gelus} GELUs | {ms['float32']:.3f} "
            f"| {ms['int8']:.3f} | {ms['int8'] / ms['float32']:.2f} | {sum(ops.values())} "
            f"| {partitions} | {', '.join(f'{k} {v}' for k, v in sorted(outside.items()) if v)} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
