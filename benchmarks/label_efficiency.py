"""Does masked-image pretraining pay? VQA accuracy per family with a share
of the training questions, from scratch against from a pretrained image
encoder, at equal fine-tuning budget.

    python -m benchmarks.label_efficiency --data benchmarks/data/sort_of_clevr_10000 \\
        --pretrain-minutes 10 --minutes 5 --fractions 0.1,1.0

1. Pretrains the image encoder (`SimMIMMaskedImagePretrainer`, the SimMIM
   recipe: 60% of 16-px mask patches, L1 on masked pixels) on the training
   split's images, with no labels, for `--pretrain-minutes` of training.
   Writes the pretrained folder (under benchmarks/data/, not committed) and
   its reconstruction figure beside the results.
2. For each fraction of the training questions (drawn at random, the same
   for both arms) trains the benchmark's SimMIM (`train_simmim`: the tiny
   preset with the image layers the pretrainer needs) twice for `--minutes`:
   from scratch and from the pretrained encoder. Evaluates on the whole test
   split.

Writes a JSON, a markdown table per family and question type, and the
learning curves.
"""

import argparse
import copy
import json
import os
import shutil
import time

import keras
import numpy as np

from benchmarks.budgeted_training import (
    Data,
    new_report,
    per_type_table,
    remove_partial,
    summary,
    train_simmim,
    write_report,
)
from simmim_tf.models.simmim_masked_image_pretrainer import (
    SimMIMMaskedImagePretrainer,
    pretrained_image_config,
    pretraining_backbone,
)
from simmim_tf.training.pretraining import save_reconstruction_figure


class TimeBudget(keras.callbacks.Callback):
    """Stops fit after `budget_s` of training time (the first, tracing step not counted)."""

    def __init__(self, budget_s):
        super().__init__()
        self.budget_s, self.trained_s, self.steps = budget_s, 0.0, 0

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.steps > 1:
            self.trained_s += time.perf_counter() - self._start
        if self.trained_s >= self.budget_s:
            self.model.stop_training = True


def pretrain(data, minutes, folder, figure, image_layers, batch_size=64, seed=0):
    """Pretrains on the training images for `minutes`; returns its summary."""
    keras.utils.set_random_seed(seed)
    backbone = pretraining_backbone("tiny", data.image_size, image_layers=image_layers)
    pretrainer = SimMIMMaskedImagePretrainer(backbone, seed=seed)
    budget = TimeBudget(60 * minutes)
    steps_per_epoch = int(np.ceil(len(data.train.images) / batch_size))
    # Warm-up then cosine over the steps the budget is expected to take is
    # unknown in advance: a flat rate after warm-up, as long pretraining runs
    # spend most of their steps near the peak.
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, 100_000, warmup_target=1e-3, warmup_steps=200, alpha=1.0
    )
    pretrainer.compile(keras.optimizers.AdamW(schedule, weight_decay=0.05, clipnorm=1.0))
    history = pretrainer.fit(
        data.train.images,
        batch_size=batch_size,
        epochs=100_000,
        shuffle=True,
        verbose=0,
        callbacks=[budget],
    ).history["loss"]
    shutil.rmtree(folder, ignore_errors=True)
    pretrainer.save_pretrained(folder, {"images": "train split of " + data.dir})
    save_reconstruction_figure(pretrainer, data.test.images[:4], figure)
    result = {
        "minutes": minutes,
        "train_s": budget.trained_s,
        "steps": budget.steps,
        "epochs": budget.steps / steps_per_epoch,
        "images_per_s": budget.steps * batch_size / budget.trained_s,
        "first_epoch_loss": history[0],
        "last_epoch_loss": history[-1],
        "loss_by_epoch": history,
    }
    print(f"pretrained: {json.dumps({k: v for k, v in result.items() if k != 'loss_by_epoch'})}")
    return result


def with_fraction(data, fraction, seed=0):
    """`data` with a random `fraction` of its training questions (all images kept)."""
    if fraction >= 1.0:
        return data
    keep = np.zeros(len(data.train), bool)
    rng = np.random.default_rng(seed)
    keep[rng.choice(len(data.train), int(round(fraction * len(data.train))), replace=False)] = True
    subset = copy.copy(data)
    subset.train = data.train.subset(keep)
    subset.train_ids, subset.train_answers = data.train_ids[keep], data.train_answers[keep]
    subset._targets = {k: v for k, v in data._targets.items() if k[0] != "anchor"}
    return subset


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default="benchmarks/data/sort_of_clevr_10000")
    parser.add_argument("--pretrain-minutes", type=float, default=10.0)
    parser.add_argument("--minutes", type=float, default=5.0, help="fine-tuning budget per run")
    parser.add_argument("--fractions", default="0.1,1.0", help="shares of training questions")
    parser.add_argument("--image-layers", type=int, default=2)
    parser.add_argument("--max-sequence-length", type=int, default=16)
    parser.add_argument(
        "--out",
        default="benchmarks/results/label_efficiency_sort_of_clevr.json",
        help="JSON to write; the .md table, .png curves and _reconstructions.png go beside it",
    )
    args = parser.parse_args(argv)
    fractions = [float(f) for f in args.fractions.split(",")]
    if any(not 0.0 < f <= 1.0 for f in fractions):
        parser.error(f"--fractions must lie in (0, 1]; received {args.fractions}")

    data = Data(args.data, args.max_sequence_length)
    report = new_report(f"Label efficiency, {os.path.basename(args.data)}", data, args.minutes)
    stem = os.path.splitext(args.out)[0]
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    folder = os.path.join("benchmarks", "data", "pretrained_" + os.path.basename(stem))
    report["pretraining"] = pretrain(
        data, args.pretrain_minutes, folder, stem + "_reconstructions.png", args.image_layers
    )
    overrides = {k: v for k, v in pretrained_image_config(folder).items() if k != "image_size"}
    for fraction in fractions:
        subset = with_fraction(data, fraction)
        for arm, init_from in (("scratch", None), ("pretrained", folder)):
            name = f"{arm}, {fraction:.0%} of questions"
            print(f"== {name}: {len(subset.train)} training questions", flush=True)
            result = train_simmim(subset, args.minutes, "tiny", overrides, init_from=init_from)
            report["results"].append(
                {"model": name, "fraction": fraction, "train_questions": len(subset.train),
                 **result}
            )  # fmt: skip
            print(f"{name}: {summary(result['accuracy'])}", flush=True)
            write_report(report, args.out + ".partial.json", table(report))
    write_report(report, args.out, table(report))
    remove_partial(args.out)


def table(report):
    pre = report["pretraining"]
    return (
        f"{report['title']}: pretraining {pre['minutes']} min ({pre['steps']} steps, "
        f"{pre['epochs']:.1f} epochs over the training images, masked-pixel L1 "
        f"{pre['first_epoch_loss']:.3f} → {pre['last_epoch_loss']:.3f}), then "
        f"{report['minutes_per_model']} min of VQA training per run; "
        f"{report['test_questions']} test questions; {report['date']}, {report['machine']}.\n"
        f"Test accuracy (%) per family and per question type.\n\n" + per_type_table(report)
    )


if __name__ == "__main__":
    main()
