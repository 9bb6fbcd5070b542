"""Why full int8 is slower than float32 on a CPU: how much of each .tflite
ai-edge-litert's default delegate (XNNPACK) takes.

For each model_*.tflite of an export folder: its op count, the number of
XNNPACK partitions the interpreter makes of it (each DELEGATE node is one
run of consecutive ops XNNPACK took; the ops between them run on TFLite's
own kernels), and the median latency of one call on 1 thread with the
default delegate and without it (`BUILTIN_WITHOUT_DEFAULT_DELEGATES`).
Inputs are zeros (latency does not depend on them); model only.

    python -m benchmarks.xnnpack_partitions --export demo_out/export
"""

import argparse
import collections
import datetime
import glob
import os
import platform

from ai_edge_litert.interpreter import Interpreter, OpResolverType

from benchmarks.tflite_timing import median_ms


def op_counts(path, resolver):
    interpreter = Interpreter(path, num_threads=1, experimental_op_resolver_type=resolver)
    interpreter.allocate_tensors()
    return collections.Counter(op["op_name"] for op in interpreter._get_ops_details())


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--export", required=True, help="folder written by simmim-tf export")
    args = parser.parse_args()
    paths = sorted(glob.glob(os.path.join(args.export, "model_*.tflite")))
    if not paths:
        parser.error(f"--export {args.export}: no model_*.tflite in it")

    print(
        f"{args.export}; {datetime.date.today()}, {platform.machine()}, {os.cpu_count()} cores; "
        "1 thread, median of 200 calls"
    )
    print("| model | ops | XNNPACK partitions | ms with XNNPACK | ms without |")
    print("|---|---|---|---|---|")
    for path in paths:
        plain = op_counts(path, OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        delegated = op_counts(path, OpResolverType.AUTO)
        with_ms = median_ms(path, runs=200, warmup=20, resolver=OpResolverType.AUTO)
        without_ms = median_ms(
            path, runs=200, warmup=20, resolver=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        )
        name = os.path.basename(path)[len("model_") : -len(".tflite")]
        print(
            f"| {name} | {sum(plain.values())} | {delegated.get('DELEGATE', 0)} "
            f"| {with_ms:.3f} | {without_ms:.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
