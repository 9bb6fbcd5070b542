"""`make demo`'s training, with another seed or backbone options.

Trains the `tiny` preset on an existing data folder with the demo's recipe
(`simmim_tf.demo`: 10 epochs, batch 64, peak learning rate 1e-3) and
evaluates it on the test split, so that a backbone option can be compared
with the preset in the small-data setting of the demo (2,000 images):

    python -m benchmarks.demo_recipe --data demo_out/data --seed 1 \\
        --backbone 'relational={"gated_between": true}' --out benchmarks/results/demo_recipe.json

Writes OUT (accuracy per family and question type, the options, the
machine) and the run folder (--run, or OUT without .json).
"""

import argparse
import json
import os
import time

from simmim_tf import machine
from simmim_tf.evaluation import format_accuracy


def backbone_option(text):
    """KEY=VALUE, VALUE read as JSON (true, 2, 0.1) or else as a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--backbone wants KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", default="demo_out/data", help="data folder (default demo_out/data)"
    )
    parser.add_argument("--out", required=True, help="results .json")
    parser.add_argument("--run", help="run folder to write (default: OUT without .json)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument(
        "--backbone",
        type=backbone_option,
        action="append",
        default=[],
        help="a backbone option over the tiny preset, KEY=VALUE (repeatable)",
    )
    args = parser.parse_args()

    from simmim_tf.models import SimMIMVQA
    from simmim_tf.training.run_config import RunConfig
    from simmim_tf.training.run_evaluation import evaluate
    from simmim_tf.training.vqa_trainer import train

    overrides = dict(args.backbone)
    from_preset = SimMIMVQA.from_preset.__func__

    # The trainer builds its model with SimMIMVQA.from_preset(config.preset, ...);
    # the options join that call (an unknown key fails there, by name).
    def from_preset_with_options(cls, preset, **kwargs):
        return from_preset(cls, preset, **{**kwargs, **overrides})

    SimMIMVQA.from_preset = classmethod(from_preset_with_options)
    run_dir = args.run or os.path.splitext(args.out)[0]
    config = RunConfig(
        data=args.data, preset="tiny", epochs=args.epochs, batch_size=64, learning_rate=1e-3,
        seed=args.seed,
    )  # fmt: skip
    start = time.time()
    train(config, run_dir, verbose=2)
    train_s = time.time() - start
    accuracy = evaluate(run_dir, args.data)
    print(format_accuracy(accuracy, f"seed {args.seed}, backbone options {overrides}"))
    record = {
        "data": args.data,
        "seed": args.seed,
        "epochs": args.epochs,
        "backbone": overrides,
        "train_s": train_s,
        "accuracy": accuracy,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine.describe(),
    }
    with open(args.out, "w") as f:
        json.dump(record, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
