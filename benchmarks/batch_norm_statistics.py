"""Is a collapse of the measured accuracy while the training loss stays low
the stem's batch-norm statistics? At each checkpoint of an ablation run
the model is measured twice on the validation split: as trained (the
moving averages of the batch statistics, momentum 0.99) and with those
statistics recomputed as the exact mean over 50 batches of training
images ("precise BN", Wu & Johnson 2021); then the moving averages are
put back and training goes on. The test split is measured both ways once,
at the end.

    python -m benchmarks.batch_norm_statistics --data benchmarks/data/clevr2d \\
        --minutes 30 --variant gated_between_image_sides --without-scenes

Prints one line per checkpoint and writes a JSON.
"""

import argparse
import json
import os

from benchmarks import ablations
from benchmarks.budgeted_training import Data, recompute_batch_norm_statistics, train_simmim
from simmim_tf.training.precise_batch_norm import batch_norm_layers


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="benchmarks/data/clevr2d")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--variant", default="gated_between_image_sides")
    parser.add_argument("--base", default="two_anchors_read_refined")
    parser.add_argument("--max-sequence-length", type=int, default=24)
    parser.add_argument("--without-scenes", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/batch_norm_statistics.json")
    args = parser.parse_args(argv)
    data = Data(args.data, args.max_sequence_length, validation_fraction=0.05)
    base_overrides, base_recipe = ablations.ALL[args.base]
    overrides, recipe = ablations.ALL[args.variant]
    overrides = {**ablations.FULL, **base_overrides, **overrides}
    # The moving averages kept (measured both ways here, then put back).
    recipe = {
        **base_recipe,
        **recipe,
        "without_scenes": args.without_scenes,
        "recompute_batch_norm": False,
    }
    measured, test = [], {}
    plain_evaluate = Data.evaluate

    def evaluate_both(self, model, split="test"):
        moving = plain_evaluate(self, model, split)
        layers = batch_norm_layers(model)
        kept = [[w.numpy() for w in (lay.moving_mean, lay.moving_variance)] for lay in layers]
        recompute_batch_norm_statistics(model, self, seed=len(measured))
        precise = plain_evaluate(self, model, split)
        for layer, (mean, variance) in zip(layers, kept, strict=True):
            layer.moving_mean.assign(mean)
            layer.moving_variance.assign(variance)
        if split == "test":
            test.update(moving_averages=moving, recomputed=precise)
            print(
                f"test: {100 * moving['overall']['accuracy']:.1f}% with the moving averages, "
                f"{100 * precise['overall']['accuracy']:.1f}% with recomputed statistics",
                flush=True,
            )
            return moving
        row = {
            "moving_averages": moving["overall"]["accuracy"],
            "recomputed": precise["overall"]["accuracy"],
        }
        measured.append(row)
        print(
            f"checkpoint {len(measured)}: validation {100 * row['moving_averages']:.1f}% with "
            f"the moving averages, {100 * row['recomputed']:.1f}% with recomputed statistics",
            flush=True,
        )
        return moving

    Data.evaluate = evaluate_both
    result = train_simmim(data, args.minutes, overrides=overrides, recipe=recipe, seed=args.seed)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(
            {
                "args": vars(args),
                "steps": result.get("steps"),
                "checkpoints": measured,
                "test": test,
                "curve": result["curve"],
            },
            f,
            indent=2,
            default=str,
        )


if __name__ == "__main__":
    main()
