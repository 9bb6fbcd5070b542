"""Where the int8 model loses precision: TF's quantization debugger, per op.

Converts the export's SavedModel to int8 as `simmim-tf export` does (same
calibration, ONE_HOT in float) and runs `tf.lite.experimental.
QuantizationDebugger` on N test questions. For each quantized op's output it
prints the calibrated range, the quantization step, and the error of the op
alone (its float result on the same dequantized inputs against its int8
result), in quantization steps: about 0.3 is pure rounding. Sorted by the
RMSE in steps; --match keeps the ops whose tensor name contains a string.

    python -m benchmarks.int8_layer_errors --run demo_out/run \
        --export demo_out/export --data demo_out/data --top 25
    python -m benchmarks.int8_layer_errors ... --match final_norm
"""

import argparse
import csv
import io
import os

import numpy as np
import tensorflow as tf

from simmim_tf.export import tflite_conversion
from simmim_tf.training.run_evaluation import load_run_and_split


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="trained run folder")
    parser.add_argument("--export", required=True, help="folder written by simmim-tf export")
    parser.add_argument("--data", required=True, help="data folder (train: calibration)")
    parser.add_argument("--questions", type=int, default=100, help="test questions run")
    parser.add_argument("--top", type=int, default=25, help="rows printed")
    parser.add_argument("--match", default="", help="only tensors whose name contains this")
    args = parser.parse_args()

    model, test, inputs = load_run_and_split(args.run, args.data, count=args.questions)
    tokenizer = model.preprocessor.question_tokenizer()
    size = model.backbone.image_size
    samples = tflite_conversion.representative_samples(args.data, tokenizer, size, 200)
    n = len(inputs["token_ids"])
    ids = inputs["token_ids"]
    images = inputs["images"].astype(np.float32)

    converter = tf.lite.TFLiteConverter.from_saved_model(
        os.path.join(args.export, "saved_model"), signature_keys=["single"]
    )
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: iter(samples)
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
        tf.lite.OpsSet.TFLITE_BUILTINS,
    ]
    # The debugger feeds inputs as a list, in the order of the model's inputs.
    order = [
        d["name"]
        for d in tf.lite.Interpreter(
            model_content=tflite_conversion.convert(
                os.path.join(args.export, "saved_model"), "float32"
            )
        ).get_input_details()
    ]
    by_name = lambda i: {"images": images[i : i + 1], "token_ids": ids[i : i + 1]}  # noqa: E731
    debug_data = [
        [by_name(i)["token_ids" if "token_ids" in name else "images"] for name in order]
        for i in range(n)
    ]
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter,
        debug_dataset=lambda: iter(debug_data),
        debug_options=tf.lite.experimental.QuantizationDebugOptions(
            denylisted_ops=list(tflite_conversion.FLOAT_OPS_IN_INT8)
        ),
    )
    debugger.run()
    dump = io.StringIO()
    debugger.layer_statistics_dump(dump)
    rows = []
    for r in csv.DictReader(io.StringIO(dump.getvalue())):
        if args.match not in r["tensor_name"]:
            continue
        step = float(r["scale"])
        rows.append(
            (
                float(r["mean_squared_error"]) ** 0.5 / step,
                float(r["mean_error"]) / step,
                float(r["max_abs_error"]) / step,
                255 * step,
                step,
                r["op_name"],
                r["tensor_name"].split(";")[0],
            )
        )
    rows.sort(reverse=True)
    print(f"{n} test questions; error of each op alone, in quantization steps")
    print("| op | tensor | range | step | RMSE | mean | max |")
    print("|---|---|---|---|---|---|---|")
    for rmse, mean, worst, span, step, op, name in rows[: args.top]:
        print(
            f"| {op} | {name} | {span:.2f} | {step:.4f} | {rmse:.2f} | {mean:.2f} | {worst:.1f} |"
        )


if __name__ == "__main__":
    main()
