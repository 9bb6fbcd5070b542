"""LayerNorm's square in the int8 model: SQUARED_DIFFERENCE against a MUL.

`LayerNorm` squares its centred input as a product (`centred * centred`).
Written as `ops.square(x - mean)`, the converter fuses the subtraction and
the square into one SQUARED_DIFFERENCE op. Same weights, same calibration,
two graphs: this converts the run's model both ways (the second by patching
`LayerNorm.call` for the length of the export) and measures each int8
model's agreement with Keras on the test questions and its latency on one
thread (model only: median of 60 calls, and ai-edge-litert's benchmark
tool), beside float32.

    python -m benchmarks.layer_norm_square --run demo_out/run --data demo_out/data \\
        --out benchmarks/results/layer_norm_square_demo.json
"""

import argparse
import collections
import contextlib
import datetime
import json
import os
import sys
import tempfile

import numpy as np
from keras import ops

from benchmarks.tflite_agreement import first_question, tflite_probabilities
from benchmarks.tflite_timing import median_ms
from simmim_tf import machine
from simmim_tf.export import serving_saved_model, tflite_conversion
from simmim_tf.export.export_report import _litert_benchmark_ms
from simmim_tf.export.tflite_model_ops import read_ops
from simmim_tf.layers.layer_norm import LayerNorm
from simmim_tf.preprocessing.answer_vocabulary import AnswerVocabulary
from simmim_tf.training.run_evaluation import load_run_and_split


def _squared_difference_call(self, x):
    """LayerNorm.call as first written: `ops.square(x - mean)`."""
    x32 = ops.cast(x, "float32")
    centred = x32 - ops.mean(x32, axis=-1, keepdims=True)
    variance = ops.mean(ops.square(centred), axis=-1, keepdims=True)
    normalised = centred * ops.rsqrt(variance + self.epsilon)
    out = normalised * ops.cast(self.gamma, "float32") + ops.cast(self.beta, "float32")
    return ops.cast(out, self.compute_dtype)


@contextlib.contextmanager
def squared_difference_layer_norm():
    product_call = LayerNorm.call
    LayerNorm.call = _squared_difference_call
    try:
        yield
    finally:
        LayerNorm.call = product_call


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--questions", type=int, default=4000)
    parser.add_argument("--out", required=True, help="JSON; the .md table goes beside it")
    args = parser.parse_args()

    model, test, inputs = load_run_and_split(args.run, args.data, count=args.questions)
    tokenizer = model.preprocessor.question_tokenizer()
    answers = AnswerVocabulary(model.preprocessor.answers)
    samples = tflite_conversion.representative_samples(
        args.data, tokenizer, model.backbone.image_size, 200
    )
    keras_answers = model.predict(inputs, batch_size=256, verbose=0).argmax(-1)
    images = inputs["images"].astype(np.float32)
    rows = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name, graph, variant in (
            ("float32", contextlib.nullcontext, "float32"),
            ("int8, square as a MUL (the package's LayerNorm)", contextlib.nullcontext, "int8"),
            ("int8, SQUARED_DIFFERENCE", squared_difference_layer_norm, "int8"),
        ):
            source = os.path.join(scratch, f"saved_model_{len(rows)}")
            with graph():
                serving_saved_model.write_saved_model(model, tokenizer, answers, source)
            flatbuffer = tflite_conversion.convert(source, variant, samples)
            path = os.path.join(scratch, f"model_{len(rows)}.tflite")
            with open(path, "wb") as f:
                f.write(flatbuffer)
            lite = tflite_probabilities(path, images, inputs["token_ids"]).argmax(-1)
            ops_count = collections.Counter(op.name for op in read_ops(flatbuffer))
            rows[name] = {
                "agreement_with_keras": float(np.mean(lite == keras_answers)),
                "ms_1_thread": median_ms(path, first_question(images, inputs["token_ids"])),
                "benchmark_tool_ms_1_thread": _litert_benchmark_ms(path, 1, 50),
                "bytes": len(flatbuffer),
                "ops": sum(ops_count.values()),
                "squared_difference_ops": ops_count.get("SQUARED_DIFFERENCE", 0),
            }
            print(name, json.dumps(rows[name]), flush=True)
    report = {
        "command": "python -m benchmarks.layer_norm_square " + " ".join(sys.argv[1:]),
        "date": datetime.date.today().isoformat(),
        "machine": machine.describe(),
        "questions": int(len(images)),
        "rows": rows,
    }
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    lines = [
        f"{report['command']}\n{report['date']}, {report['machine']}, {report['questions']} "
        "test questions\n",
        "| model | agreement with Keras | ms, 1 thread | benchmark tool ms, 1 thread | ops | MB |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        lines.append(
            f"| {name} | {100 * row['agreement_with_keras']:.2f}% | {row['ms_1_thread']:.2f} | "
            f"{row['benchmark_tool_ms_1_thread']} | {row['ops']} | {row['bytes'] / 1e6:.3f} |"
        )
    with open(os.path.splitext(args.out)[0] + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
