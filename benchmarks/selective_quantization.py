"""Full-integer int8 against selective quantization with litert-quantizer.

The package's int8 variant comes from TFLiteConverter (calibrated, ONE_HOT
kept in float, `simmim_tf.export.tflite_conversion`). This benchmark quantizes
the same float32 .tflite again with litert-quantizer (the renamed
ai-edge-quantizer) under several recipes, calibrated on the same training
questions, and measures each against the Keras model on the test split:

- argmax agreement with Keras, on all questions and on those where Keras is
  confident (top-1 probability at least `--margin` above the second);
- file size against float32; median latency of 50 calls on 1 thread.

    python -m benchmarks.selective_quantization --run demo_out/run \
        --export demo_out/export --data demo_out/data --questions 1000

Recipes (litert-quantizer):
  a8w8                  every supported op int8 (static_wi8_ai8)
  a8w8_float_attn_ln    a8w8, softmax, batch matmul and LayerNorm's ops in float
  a8w8_a16_attention    a8w8, softmax and batch matmul with int16 activations
  dynamic               int8 weights, float activations (dynamic_wi8_afp32)
"""

import argparse
import json
import os
import time

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from litert_quantizer import quantizer, recipe

from simmim_tf import machine
from simmim_tf.export.tflite_conversion import representative_samples
from simmim_tf.training.run_evaluation import load_run_and_split

ATTENTION = ("SOFTMAX", "BATCH_MATMUL")
LAYER_NORM = ("MEAN", "SQUARED_DIFFERENCE", "RSQRT")


def _recipe(name):
    def build(q):
        if name == "dynamic":
            q.load_quantization_recipe(recipe.dynamic_wi8_afp32())
            return
        q.load_quantization_recipe(recipe.static_wi8_ai8())
        if name == "a8w8_float_attn_ln":
            for op in ATTENTION + LAYER_NORM:
                q.update_quantization_recipe(".*", op, algorithm_key="no_quantize")
        elif name == "a8w8_a16_attention":
            for op in ATTENTION:
                q.add_static_config(".*", op, activation_num_bits=16, weight_num_bits=8)

    return build


RECIPES = ("a8w8", "a8w8_float_attn_ln", "a8w8_a16_attention", "dynamic")


def quantize(float_model, name, samples, signature="single"):
    q = quantizer.Quantizer(float_model)
    _recipe(name)(q)
    calibration = q.calibrate({signature: samples}, num_threads=2) if q.need_calibration else None
    return bytes(q.quantize(calibration, enable_progress_report=False).quantized_model)


class Runner:
    """Float in, float out, whatever the model's input and output types."""

    def __init__(self, flatbuffer, signature="single"):
        self.runner = Interpreter(model_content=flatbuffer, num_threads=1).get_signature_runner(
            signature
        )
        self.inputs = self.runner.get_input_details()
        self.outputs = self.runner.get_output_details()

    def __call__(self, **inputs):
        feed = {}
        for name, x in inputs.items():
            detail = self.inputs[name]
            scale, zero = detail["quantization"]
            if scale and detail["dtype"] != x.dtype:
                info = np.iinfo(detail["dtype"])
                x = np.clip(np.round(x / scale + zero), info.min, info.max)
            feed[name] = x.astype(detail["dtype"])
        out = {}
        for name, y in self.runner(**feed).items():
            scale, zero = self.outputs[name]["quantization"]
            out[name] = (y.astype(np.float32) - zero) * scale if scale else y
        return out


def measure(flatbuffer, images, ids, reference, margin):
    run = Runner(flatbuffer)
    probs = np.concatenate(
        [
            run(images=images[i : i + 1], token_ids=ids[i : i + 1])["probabilities"]
            for i in range(len(ids))
        ]
    )
    agree = probs.argmax(-1) == reference.argmax(-1)
    top2 = np.sort(reference, axis=-1)[:, -2:]
    confident = top2[:, 1] - top2[:, 0] >= margin
    times = []
    for _ in range(60):
        start = time.perf_counter()
        run(images=images[:1], token_ids=ids[:1])
        times.append(time.perf_counter() - start)
    return {
        "agreement": float(agree.mean()),
        "agreement_where_confident": float(agree[confident].mean()) if confident.any() else None,
        "confident_share": float(confident.mean()),
        "bytes": len(flatbuffer),
        "ms_1_thread": 1e3 * float(np.median(times[10:])),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="trained run folder")
    parser.add_argument("--export", required=True, help="export folder with model_float32.tflite")
    parser.add_argument(
        "--data", required=True, help="data folder (train: calibration, test: measure)"
    )
    parser.add_argument("--questions", type=int, default=1000, help="test questions measured")
    parser.add_argument("--calibration-size", type=int, default=200)
    parser.add_argument("--margin", type=float, default=0.2, help="'confident' top-1 − top-2")
    parser.add_argument("--out", default="benchmarks/results/selective_quantization.json")
    args = parser.parse_args()

    model, test, inputs = load_run_and_split(args.run, args.data, count=args.questions)
    tokenizer = model.preprocessor.question_tokenizer()
    size = model.backbone.image_size
    n = len(inputs["token_ids"])
    ids = inputs["token_ids"]
    images = inputs["images"].astype(np.float32)
    logits = model.predict(inputs, verbose=0)
    reference = np.exp(logits - logits.max(-1, keepdims=True))
    reference /= reference.sum(-1, keepdims=True)
    samples = representative_samples(args.data, tokenizer, size, args.calibration_size)
    with open(os.path.join(args.export, "model_float32.tflite"), "rb") as f:
        float_model = f.read()

    candidates = {"float32": float_model}
    tf_int8 = os.path.join(args.export, "model_int8.tflite")
    if os.path.isfile(tf_int8):
        with open(tf_int8, "rb") as f:
            candidates["tf_converter_int8 (package default)"] = f.read()
    for name in RECIPES:
        candidates[f"litert_quantizer_{name}"] = quantize(float_model, name, samples)
    rows = {}
    for name, flatbuffer in candidates.items():
        rows[name] = measure(flatbuffer, images, ids, reference, args.margin)
        rows[name]["size_vs_float32"] = rows[name]["bytes"] / len(float_model)
        print(name, json.dumps(rows[name]), flush=True)

    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine.describe(),
        "run": args.run,
        "questions": n,
        "margin": args.margin,
        "results": rows,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    lines = [
        f"{n} test questions of {args.data}; {report['date']}, {report['machine']}; "
        f"confident: Keras top-1 at least {args.margin} above top-2",
        "",
        "| model | agreement | agreement where confident (share) | size vs float32 "
        "| ms, 1 thread |",
        "|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        confident = r["agreement_where_confident"]
        confident = "–" if confident is None else f"{100 * confident:.1f}%"
        lines.append(
            f"| {name} | {100 * r['agreement']:.1f}% | "
            f"{confident} ({100 * r['confident_share']:.0f}%) | "
            f"{100 * r['size_vs_float32']:.0f}% | {r['ms_1_thread']:.2f} |"
        )
    with open(args.out.replace(".json", ".md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
