"""Training throughput of SimMIM presets: questions per second of `model.fit`.

For each preset and setting (XLA on or off, float32 or a mixed precision
policy), times `model.fit` on synthetic Sort-of-CLEVR-shaped batches (75×75
images, 16-token questions; throughput does not depend on pixel values)
after a warm-up fit that compiles the step. Runs under any Keras backend:
TensorFlow here; JAX on GPU machines that have no TensorFlow
(`KERAS_BACKEND=jax`). Under JAX it also reports the step's FLOPs from XLA's
cost analysis and, given the accelerator's peak (--peak-tflops), the model
FLOPs utilisation.

    python -m benchmarks.train_throughput --presets tiny,small
    python -m benchmarks.train_throughput --presets tiny --precision float32 --jit off \
        --steps-per-execution 1,8 --out benchmarks/results/steps_per_execution.json
    KERAS_BACKEND=jax python -m benchmarks.train_throughput --presets base \\
        --batch-size 256 --precision float32,mixed_bfloat16 --peak-tflops 989

Writes a JSON (--out) and prints a markdown table.
"""

import argparse
import itertools
import json
import os
import time

import keras
import numpy as np

from simmim_tf import machine
from simmim_tf.models.simmim_vqa import SimMIMVQA

IMAGE_SIZE = 75
SEQUENCE_LENGTH = 16
VOCABULARY = 40
ANSWERS = 10


def synthetic_batch(n, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(2, VOCABULARY, (n, SEQUENCE_LENGTH)).astype("int32")
    ids[:, 12:] = 0
    x = {
        "images": rng.integers(0, 256, (n, IMAGE_SIZE, IMAGE_SIZE, 3)).astype("uint8"),
        "token_ids": ids,
        "padding_mask": (ids != 0).astype("int32"),
    }
    return x, rng.integers(0, ANSWERS, n).astype("int32")


def step_flops(model, x, y):
    """FLOPs of one training step (forward, backward, update) from XLA; JAX only."""
    if keras.backend.backend() != "jax":
        return None
    state = (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in model.optimizer.variables],
        [v.value for v in model.metrics_variables],
    )
    import jax

    lowered = jax.jit(model.train_step).lower(state, (x, y))
    analysis = lowered.compile().cost_analysis()
    analysis = analysis[0] if isinstance(analysis, list) else analysis
    return float(analysis.get("flops", 0.0)) or None


def measure(preset, precision, jit_compile, batch_size, steps, steps_per_execution=1):
    keras.config.set_dtype_policy(precision)
    keras.utils.set_random_seed(0)
    model = SimMIMVQA.from_preset(
        preset,
        num_answers=ANSWERS,
        vocabulary_size=VOCABULARY,
        image_size=IMAGE_SIZE,
        max_sequence_length=SEQUENCE_LENGTH,
    )
    model.compile(jit_compile=jit_compile, steps_per_execution=steps_per_execution)
    x, y = synthetic_batch(batch_size * steps)
    warm = batch_size * 2 * steps_per_execution  # compiles the step (and the loop)
    warm_x = {k: v[:warm] for k, v in x.items()}
    model.fit(warm_x, y[:warm], batch_size=batch_size, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, shuffle=False)
    seconds = time.perf_counter() - start
    result = {
        "preset": preset,
        "precision": precision,
        "jit_compile": jit_compile,
        "steps_per_execution": steps_per_execution,
        "batch_size": batch_size,
        "steps": steps,
        "parameters": model.count_params(),
        "questions_per_s": batch_size * steps / seconds,
        "ms_per_step": 1e3 * seconds / steps,
    }
    one = {k: v[:batch_size] for k, v in x.items()}
    result["step_flops"] = step_flops(model, one, y[:batch_size])
    keras.config.set_dtype_policy("float32")
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="tiny,small")
    parser.add_argument("--precision", default="float32,mixed_bfloat16")
    parser.add_argument("--jit", default="off,on", help="XLA settings to try: off, on or both")
    parser.add_argument(
        "--batch-size",
        default="64",
        help="comma-separated batch sizes to try (repeat them, e.g. 64,128,64,128, "
        "to see this machine's drift between settings)",
    )
    parser.add_argument("--steps", type=int, default=30, help="timed steps per setting")
    parser.add_argument(
        "--steps-per-execution",
        default="1",
        help="comma-separated values of model.compile(steps_per_execution=...) to try",
    )
    parser.add_argument("--peak-tflops", type=float, help="accelerator peak, for MFU")
    parser.add_argument("--out", default="benchmarks/results/train_throughput.json")
    args = parser.parse_args()

    results = []
    for preset in args.presets.split(","):
        for precision in args.precision.split(","):
            for jit in args.jit.split(","):
                for spe, batch in itertools.product(
                    args.steps_per_execution.split(","), args.batch_size.split(",")
                ):
                    r = measure(preset, precision, jit == "on", int(batch), args.steps, int(spe))
                    if r["step_flops"] and args.peak_tflops:
                        achieved = r["step_flops"] / (r["ms_per_step"] / 1e3)
                        r["mfu"] = achieved / (args.peak_tflops * 1e12)
                    results.append(r)
                    print(json.dumps(r), flush=True)

    device = "cpu"
    if keras.backend.backend() == "jax":
        import jax

        device = str(jax.devices()[0].device_kind)
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "backend": keras.backend.backend(),
        "device": device,
        "machine": machine.describe(),
        "results": results,
    }
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)

    print(f"\n{report['backend']} on {report['device']} ({report['machine']}), {report['date']}")
    print(
        "| preset | params | precision | XLA | steps/execution | batch | ms/step | questions/s "
        "| GFLOP/step | MFU |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        flops = f"{r['step_flops'] / 1e9:.2f}" if r["step_flops"] else "n/a"
        mfu = f"{100 * r['mfu']:.1f}%" if "mfu" in r else "n/a"
        print(
            f"| {r['preset']} | {r['parameters']:,} | {r['precision']} | "
            f"{'on' if r['jit_compile'] else 'off'} | {r['steps_per_execution']} | "
            f"{r['batch_size']} | {r['ms_per_step']:.1f} | "
            f"{r['questions_per_s']:.0f} | {flops} | {mfu} |"
        )


if __name__ == "__main__":
    main()
