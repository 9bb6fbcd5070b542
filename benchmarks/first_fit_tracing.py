"""The first `fit` of a new model: how many times TensorFlow traces the train
step, and how long that first call takes, in three arms:

- `library`: the optimizer built before tracing (`PrebuiltOptimizer`, what
  the tasks' `fit` does) and weight decay reading the learning-rate
  schedule once a step (`WeightDecayAtOneRate`, in `SimMIMAdamW`);
- `schedule_per_weight`: the same with Keras's own weight decay, which
  reads the schedule once per weight;
- `built_in_trace`: plain Keras outside a tf.distribute strategy, which
  builds the optimizer inside the trace (the library's optimizer).

A fresh `SimMIMVQA` of the `tiny` preset at Sort-of-CLEVR's sizes (75×75
images, 16 tokens) compiled with the warm-up and cosine schedule of
`simmim-tf train`, one epoch of a few synthetic batches; the arms
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
from simmim_tf.models.summed_then_clipped import SimMIMAdamW
from simmim_tf.training.vqa_trainer import warmup_cosine_schedule

ARMS = ("library", "schedule_per_weight", "built_in_trace")


class ScheduleReadPerWeight(SimMIMAdamW):
    """The library's optimizer with Keras's own weight decay."""

    def _apply_weight_decay(self, variables):
        return keras.optimizers.AdamW._apply_weight_decay(self, variables)


def first_fit(arm, batches=3, batch_size=16, seed=0):
    keras.utils.set_random_seed(seed)
    model = SimMIMVQA.from_preset(
        "tiny", num_answers=10, vocabulary_size=40, image_size=75, max_sequence_length=16
    )
    optimizer = ScheduleReadPerWeight if arm == "schedule_per_weight" else SimMIMAdamW
    schedule = warmup_cosine_schedule(1e-3, total_steps=1000, warmup_fraction=0.05)
    model.compile(optimizer(schedule, weight_decay=0.01, beta_2=0.95, clipnorm=1.0))
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
    fit = super(PrebuiltOptimizer, model).fit if arm == "built_in_trace" else model.fit
    start = time.perf_counter()
    fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
    return {"arm": arm, "traces": len(traces), "seconds": time.perf_counter() - start}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="pairs of runs, alternating")
    parser.add_argument("--out", default="benchmarks/results/first_fit_tracing.json")
    args = parser.parse_args()
    runs = []
    for _ in range(args.repeats):
        for arm in ARMS:
            runs.append(first_fit(arm))
            print(json.dumps(runs[-1]), flush=True)
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine.describe(),
        "runs": runs,
    }
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    print("| arm | traces of the train step | first fit (s) |\n|---|---|---|")
    for arm in ARMS:
        seconds = ", ".join(f"{r['seconds']:.1f}" for r in runs if r["arm"] == arm)
        traces = next(r["traces"] for r in runs if r["arm"] == arm)
        print(f"| {arm} | {traces} | {seconds} |")


if __name__ == "__main__":
    main()
