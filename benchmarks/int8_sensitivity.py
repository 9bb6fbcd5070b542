"""Where int8 loses a model's accuracy, part by part, emulated in Keras.

Every tensor the int8 converter quantizes (the `converter` scope of
`simmim_tf.export.quantization_aware`) is fake-quantized over the range the
export's own calibration records (200 training questions), the kernels per
output channel. Then each top-level part of the model (patch_embedding,
image_encoder, question_encoder, visual_attention, ..., answer_head) is kept
in float in turn ("int8 but PART"), and quantized alone ("only PART"); with
--within PART, only PART is quantized and each of its tensors is kept in
float in turn, and each attention softmax output of PART is measured
against TFLite's fixed int8 scale of 1/256 (`softmax_rounding`). The "all
int8" row against the .tflite's own figure (the export report) says how
closely the emulation follows the converter. No conversion is run.

Per family and per question type accuracy on the first N test questions,
and argmax agreement with the float model.

    python -m benchmarks.int8_sensitivity \
        --run benchmarks/data/clevr2d_60min_seed1/two_anchors_read \
        --data benchmarks/data/clevr2d --questions 3000 \
        --out benchmarks/results/int8_sensitivity_clevr2d_60min.json
    python -m benchmarks.int8_sensitivity ... --within visual_attention
"""

import argparse
import contextlib
import datetime
import json
import os

import keras
import numpy as np

from simmim_tf import machine
from simmim_tf.evaluation import accuracy_by_family
from simmim_tf.export import quantization_aware as qa
from simmim_tf.export.tflite_conversion import representative_samples
from simmim_tf.layers.quantization_points import quantization_handler
from simmim_tf.training.run_evaluation import load_run_and_split


def parts_of(model, ranges):
    """The model's top-level parts that hold a quantized tensor or kernel, in
    the order their tensors were first met (input to output)."""
    seen = dict.fromkeys(key.split("/")[0] for key in ranges)
    for layer in qa.quantized_layers(model):
        seen.setdefault(layer.path.split("/")[0])
    return list(seen)


def softmax_rounding(model, inputs, part, batch_size=200):
    """For each attention softmax output (".../weights") under `part`: how
    its rows fare on TFLite's fixed int8 scale of 1/256, on `inputs`. The
    share of the attention mass in weights below half a step (they round to
    0), and the sum of a row's weights once rounded to the nearest step
    (1 before rounding), mean and lowest."""
    rows = {}

    def record(key, x, fixed_range=None):
        if key.startswith(part + "/") and key.endswith("/weights"):
            w = keras.ops.convert_to_numpy(x)
            rows.setdefault(key, []).append(w.reshape(-1, w.shape[-1]))
        return x

    with quantization_handler(record):
        for i in range(0, len(inputs["token_ids"]), batch_size):
            model({k: v[i : i + batch_size] for k, v in inputs.items()}, training=False)
    stats = {}
    for key, chunks in rows.items():
        w = np.concatenate(chunks)
        rounded = np.round(w * 256).sum(-1) / 256
        stats[key] = {
            "keys": int(w.shape[-1]),
            "mass_below_half_step": float(np.where(w < 1 / 512, w, 0).sum(-1).mean()),
            "rounded_sum_mean": float(rounded.mean()),
            "rounded_sum_min": float(rounded.min()),
            "rounded_sum_max": float(rounded.max()),
        }
    return stats


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", required=True, help="trained run folder")
    parser.add_argument("--data", required=True, help="data folder (train: calibration; test)")
    parser.add_argument("--questions", type=int, default=3000, help="first N test questions")
    parser.add_argument(
        "--within",
        default="",
        help="a part (e.g. visual_attention): instead, quantize only that part and keep each "
        "of its tensors in float in turn",
    )
    parser.add_argument(
        "--out", default="", help="JSON to write, with a .md table beside it (default: print)"
    )
    args = parser.parse_args()

    model, test, inputs = load_run_and_split(args.run, args.data, count=args.questions)
    n = len(inputs["token_ids"])
    answers = model.preprocessor.answers
    tokenizer = model.preprocessor.question_tokenizer()
    samples = representative_samples(args.data, tokenizer, model.backbone.image_size, 200)
    ranges = qa.tensor_ranges(model, qa.calibration_batches(samples))
    parts = parts_of(model, ranges)

    def measure(name, block):
        model.predict_function = None  # traced afresh, with this row's quantization
        with block:
            logits = model.predict(inputs, batch_size=256, verbose=0)
        chosen = np.argmax(logits, axis=-1)
        return name, chosen

    rows = [measure("float (Keras)", contextlib.nullcontext())]
    if args.within:
        if args.within not in parts:
            parser.error(f"--within {args.within}: not a part of this model; choose from {parts}")
        others = [p for p in parts if p != args.within]
        rows.append(
            measure(f"only {args.within}", qa.emulated_int8(model, ranges, float_prefixes=others))
        )
        for key in [k for k in ranges if k.startswith(args.within + "/")]:
            block = qa.emulated_int8(model, ranges, float_prefixes=[*others, key])
            rows.append(measure(f"only {args.within}, but {key[len(args.within) + 1 :]}", block))
        parts = []  # no part-by-part rows
    else:
        rows.append(measure("all int8", qa.emulated_int8(model, ranges)))
        rows.append(
            measure(
                "int8 activations, float kernels", qa.emulated_int8(model, ranges, weights=False)
            )
        )
    for part in parts:
        rows.append(
            measure(f"int8 but {part}", qa.emulated_int8(model, ranges, float_prefixes=[part]))
        )
    for part in parts:
        others = [p for p in parts if p != part]
        rows.append(measure(f"only {part}", qa.emulated_int8(model, ranges, float_prefixes=others)))
        print(f"{part}: done", flush=True)

    reference = rows[0][1]
    results = []
    for name, chosen in rows:
        accuracy = accuracy_by_family(
            [answers[i] for i in chosen],
            test.answers[:n],
            test.families[:n],
            None,
            test.question_types[:n],
        )
        results.append(
            {"row": name, "agreement": float(np.mean(chosen == reference)), "accuracy": accuracy}
        )
    report = {
        "run": args.run,
        "data": args.data,
        "questions": n,
        "parts": parts,
        "date": datetime.datetime.now().isoformat(timespec="minutes"),
        "machine": machine.describe(),
        "results": results,
    }
    if args.within:
        report["softmax_rounding"] = softmax_rounding(model, inputs, args.within)
    text = table(report)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)
        with open(os.path.splitext(args.out)[0] + ".md", "w") as f:
            f.write(text)


def table(report):
    first = report["results"][0]["accuracy"]
    families = [k for k in first if k not in ("overall", "by_question_type")]
    types = [t for t in first.get("by_question_type", {}) if t not in families]
    head = ["row", "agreement", "overall", *families, *types]
    lines = [
        f"int8 emulated in Keras, part by part: {report['run']} on the first "
        f"{report['questions']} test questions of {report['data']}; {report['date']}, "
        f"{report['machine']}. Accuracy, %.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in report["results"]:
        acc = r["accuracy"]
        cells = [r["row"], f"{100 * r['agreement']:.2f}", f"{100 * acc['overall']['accuracy']:.2f}"]
        cells += [f"{100 * acc[f]['accuracy']:.2f}" for f in families]
        cells += [f"{100 * acc['by_question_type'][t]['accuracy']:.2f}" for t in types]
        lines.append("| " + " | ".join(cells) + " |")
    for key, st in report.get("softmax_rounding", {}).items():
        lines.append(
            f"\n{key} over {st['keys']} keys, on TFLite's int8 scale of 1/256: "
            f"{100 * st['mass_below_half_step']:.1f}% of a row's mass in weights below half a "
            f"step; a row's rounded weights sum to {st['rounded_sum_mean']:.3f} on average "
            f"({st['rounded_sum_min']:.3f} to {st['rounded_sum_max']:.3f})."
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
