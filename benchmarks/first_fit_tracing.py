"""The first `fit` of a new model: how many times TensorFlow traces the train
step, and how long that first call takes, with the optimizer built before
tracing (`PrebuiltOptimizer`, what the tasks' `fit` does) and without (plain
Keras outside a tf.distribute strategy, which builds it inside the trace).

A fresh `SimMIMVQA` of the `tiny` preset at Sort-of-CLEVR's sizes (75×75
images, 16 tokens), one epoch of a few synthetic batches; the arms
alternate, so that a drift of this machine's speed shows.

    python -m benchmarks.first_fit_tracing --repeats 2 \\
        --out benchmarks/results/first_fit_tracing.json
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np

from simmim_tf import machine
from simmim_tf.models import SimMIMVQA
from simmim_tf.models.prebuilt_optimizer import (
    PrebuiltOptimizer,
    count_train_step_traces,
)


def first_fit(prebuilt, batches=3, batch_size=16, seed=0):
    keras.utils.set_random_seed(seed)
    model = SimMIMVQA.from_preset(
        "tiny", num_answers=10, vocabulary_size=40, image_size=75, max_sequence_length=16
    )
    model.compile()
    traces = count_train_step_traces(model)
    rng = np.random.default_rng(seed)
    n = batches * batch_size
    ids = rng.integers(1, 40, (n, 16)).astype("int32")
    x = {
        "images": rng.integers(0, 256, (n, 75, 75, 3)).astype("uint8"),
        "token_ids": ids,
        "padding_mask": ids != 0,
    }
    y = rng.integers(0, 10, n)
    fit = model.fit if prebuilt else super(PrebuiltOptimizer, model).fit
    start = time.perf_counter()
    fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
    return {"prebuilt": prebuilt, "traces": len(traces), "seconds": time.perf_counter() - start}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="pairs of runs, alternating")
    parser.add_argument("--out", default="benchmarks/results/first_fit_tracing.json")
    args = parser.parse_args()
    runs = []
    for _ in range(args.repeats):
        for prebuilt in (True, False):
            runs.append(first_fit(prebuilt))
            print(json.dumps(runs[-1]), flush=True)
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine.describe(),
        "runs": runs,
    }
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    print("| optimizer | traces | first fit (s) |\n|---|---|---|")
    for r in runs:
        built = "built before fit" if r["prebuilt"] else "built in the trace"
        print(f"| {built} | {r['traces']} | {r['seconds']:.1f} |")


if __name__ == "__main__":
    main()
