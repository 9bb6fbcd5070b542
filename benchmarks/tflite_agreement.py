"""How closely the exported TFLite models follow the Keras model.

For the first N test questions of a data folder, compares each .tflite's
answer probabilities with the Keras model's: argmax agreement (on all
questions, and where Keras's two best answers are at least 0.1 apart), the
largest absolute probability difference, and the median latency of one call
on 1 thread, and how often the model's two best answers tie exactly (int8
outputs have 256 levels; argmax then takes the first).

Each --float-ops adds a row: the int8 model converted again (the export's
calibration) with those op types kept in float, i.e. selective quantization.
A value is a comma-separated list of TFLite op types ('' for a fully integer
model), or one of the named sets:

  layer_norm   ONE_HOT and LayerNorm's ops (MEAN, RSQRT, SUB, MUL; before
               2026-12-01 the square was a SQUARED_DIFFERENCE)
  matmul_only  every op that computes in float but FULLY_CONNECTED and
               CONV_2D, as the int8_mixed variant

    python -m benchmarks.tflite_agreement --run demo_out/run \
        --export demo_out/export --data demo_out/data --questions 4000 \
        --float-ops layer_norm --float-ops matmul_only
"""

import argparse
import datetime
import json
import os
import tempfile

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from benchmarks.tflite_timing import median_ms
from simmim_tf import machine
from simmim_tf.export import tflite_conversion
from simmim_tf.training.run_evaluation import load_run_and_split

LAYER_NORM = ("ONE_HOT", "MEAN", "RSQRT", "SUB", "MUL")


def float_op_set(choice, float_flatbuffer):
    """The op types a --float-ops value names, for the model `float_flatbuffer`."""
    if choice == "layer_norm":
        return LAYER_NORM
    if choice == "matmul_only":  # the int8_mixed variant's choice
        return tflite_conversion.mixed_float_ops(float_flatbuffer)
    return tuple(op for op in choice.split(",") if op)


def ties(probabilities):
    """Share of questions whose two best answers have exactly equal probability."""
    top2 = np.sort(probabilities, axis=-1)[:, -2:]
    return float(np.mean(top2[:, 0] == top2[:, 1]))


def first_question(images, ids):
    """The feed of one call: the first test question."""
    return {"images": images[:1].astype(np.float32), "token_ids": ids[:1]}


def tflite_probabilities(path, images, ids):
    runner = Interpreter(path).get_signature_runner()
    return np.concatenate(
        [
            runner(images=images[i : i + 1].astype(np.float32), token_ids=ids[i : i + 1])[
                "probabilities"
            ]
            for i in range(len(ids))
        ]
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="trained run folder")
    parser.add_argument("--export", required=True, help="folder written by simmim-tf export")
    parser.add_argument("--data", required=True, help="data folder (its test split is used)")
    parser.add_argument("--questions", type=int, default=300)
    parser.add_argument(
        "--float-ops",
        action="append",
        default=[],
        help="add an int8 row keeping these comma-separated op types in float ('' for none), "
        "or a named set: layer_norm, matmul_only (repeatable)",
    )
    args = parser.parse_args()

    model, test, inputs = load_run_and_split(args.run, args.data, count=args.questions)
    tokenizer = model.preprocessor.question_tokenizer()
    n = len(inputs["token_ids"])
    ids, images = inputs["token_ids"], inputs["images"]
    reference = tf.nn.softmax(model.predict(inputs, verbose=0)).numpy()

    paths = {
        v: os.path.join(args.export, f"model_{v}.tflite")
        for v in tflite_conversion.VARIANTS
        if os.path.isfile(os.path.join(args.export, f"model_{v}.tflite"))
    }
    if args.float_ops:
        samples = tflite_conversion.representative_samples(
            json.load(open(os.path.join(args.run, "run_config.json")))["data"],
            tokenizer,
            model.backbone.image_size,
            200,
        )
        saved_model = os.path.join(args.export, "saved_model")
        float_model = tflite_conversion.convert(saved_model, "float32")
        scratch = tempfile.mkdtemp()
        for choice in args.float_ops:
            float_ops = float_op_set(choice, float_model)
            flatbuffer = tflite_conversion.convert(
                saved_model, "int8", samples, float_ops=float_ops
            )
            path = os.path.join(scratch, f"{len(paths)}.tflite")
            with open(path, "wb") as f:
                f.write(flatbuffer)
            paths[f"int8, float: {choice or 'none'}"] = path

    print(
        f"{n} test questions of {args.data}; {datetime.date.today()}, {machine.describe()}; "
        "the export's int8 keeps "
        f"{','.join(tflite_conversion.FLOAT_OPS_IN_INT8)} in float"
    )
    top2 = np.sort(reference, axis=-1)[:, -2:]
    decisive = (top2[:, 1] - top2[:, 0]) >= 0.1
    print(f"Keras's top two answers are within 0.1 of each other on {1 - decisive.mean():.0%}")
    types = np.asarray(test.question_types[:n])
    print(
        "| variant | argmax agreement | where Keras's top-2 margin >= 0.1 | max abs prob. diff. "
        "| its top two tie | lowest agreement by question type | MB | ms, 1 thread |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for variant, path in paths.items():
        probs = tflite_probabilities(path, images, ids)
        same = probs.argmax(-1) == reference.argmax(-1)
        by_type = {t: same[types == t].mean() for t in sorted(set(types))}
        worst = min(by_type, key=by_type.get)
        print(
            f"| {variant} | {same.mean():.1%} | {same[decisive].mean():.1%} "
            f"| {np.max(np.abs(probs - reference)):.4f} | {ties(probs):.1%} "
            f"| {by_type[worst]:.1%} ({worst}) "
            f"| {os.path.getsize(path) / 1e6:.3f} "
            f"| {median_ms(path, first_question(images, ids)):.2f} |"
        )


if __name__ == "__main__":
    main()
