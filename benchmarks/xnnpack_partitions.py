"""Why full int8 is slower than float32 on a CPU: how much of each .tflite
ai-edge-litert's default delegate (XNNPACK) takes.

For each model_*.tflite of an export folder: its op count, the number of
XNNPACK partitions the interpreter makes of it (each DELEGATE node is one
run of consecutive ops XNNPACK took; the ops between them run on TFLite's
own kernels), and the median latency of one call on 1 thread with the
default delegate and without it (`BUILTIN_WITHOUT_DEFAULT_DELEGATES`), and
how many times faster than float32 each is with XNNPACK. The models take
turns, `--rounds` rounds of 200 calls each, and the median of the rounds'
medians is reported, so that a slow minute of the machine falls on every
model alike. Inputs are zeros (latency does not depend on them); model only.
The first line names the CPU: whether int8 beats float32 depends on its
int8 dot product (`simmim_tf.machine`).

    python -m benchmarks.xnnpack_partitions --export demo_out/export
"""

import argparse
import collections
import datetime
import glob
import os

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from benchmarks.tflite_timing import median_ms
from simmim_tf import machine


def op_counts(path, resolver):
    interpreter = Interpreter(path, num_threads=1, experimental_op_resolver_type=resolver)
    interpreter.allocate_tensors()
    return collections.Counter(op["op_name"] for op in interpreter._get_ops_details())


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--export", required=True, help="folder written by simmim-tf export")
    parser.add_argument("--rounds", type=int, default=5, help="turns each model takes (default 5)")
    args = parser.parse_args()
    paths = sorted(glob.glob(os.path.join(args.export, "model_*.tflite")))
    if not paths:
        parser.error(f"--export {args.export}: no model_*.tflite in it")

    resolvers = {
        "with": OpResolverType.AUTO,
        "without": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    }
    times = {(path, kind): [] for path in paths for kind in resolvers}
    for _ in range(args.rounds):
        for path in paths:
            for kind, resolver in resolvers.items():
                times[path, kind].append(median_ms(path, runs=200, warmup=20, resolver=resolver))
    ms = {key: float(np.median(values)) for key, values in times.items()}
    float32 = next((p for p in paths if p.endswith("model_float32.tflite")), None)
    print(
        f"{args.export}; {datetime.datetime.now():%Y-%m-%d %H:%M}, {machine.describe()}; "
        f"1 thread, median of {args.rounds} rounds of 200 calls"
    )
    print("| model | ops | XNNPACK partitions | ms with XNNPACK | vs float32 | ms without |")
    print("|---|---|---|---|---|---|")
    for path in paths:
        plain = op_counts(path, OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        delegated = op_counts(path, OpResolverType.AUTO)
        name = os.path.basename(path)[len("model_") : -len(".tflite")]
        speed = f"{ms[float32, 'with'] / ms[path, 'with']:.2f}×" if float32 else "–"
        print(
            f"| {name} | {sum(plain.values())} | {delegated.get('DELEGATE', 0)} "
            f"| {ms[path, 'with']:.3f} | {speed} | {ms[path, 'without']:.3f} |"
        )


if __name__ == "__main__":
    main()
