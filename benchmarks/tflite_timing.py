"""One timing loop for the benchmarks that time a .tflite: the median of
one call on 1 thread, model only (no tokenisation)."""

import time

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType


def median_ms(path, feed=None, runs=60, warmup=10, resolver=OpResolverType.AUTO):
    """Median ms of one call of the .tflite at `path` on 1 thread.

    feed: {input name: array} for one call; None: zeros of each input's
    shape (latency does not depend on the values). resolver: AUTO applies
    ai-edge-litert's default delegate (XNNPACK);
    BUILTIN_WITHOUT_DEFAULT_DELEGATES runs TFLite's own kernels only."""
    interpreter = Interpreter(path, num_threads=1, experimental_op_resolver_type=resolver)
    runner = interpreter.get_signature_runner()
    if feed is None:
        feed = {
            name: np.zeros(detail["shape"], detail["dtype"])
            for name, detail in runner.get_input_details().items()
        }
    times = []
    for _ in range(warmup + runs):
        start = time.perf_counter()
        runner(**feed)
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times[warmup:]))
