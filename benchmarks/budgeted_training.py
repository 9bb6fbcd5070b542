"""Training at a wall-clock budget, shared by the Sort-of-CLEVR, CLEVR-2D and
ablation benchmarks.

A run trains one model for `minutes` of training time (the clock pauses
while it evaluates), evaluates on the test split at a quarter, half, three
quarters and all of the budget, and returns accuracy per family and per
question type with the learning curve.

SimMIM variants train through `SimMIMVQATraining` (image-grouped batches,
the grounding loss where the data has scenes) with AdamW, a linear warm-up
and a cosine decay over the budget's *time* (`TimeCosineSchedule`), since a
wall-clock budget has no step count known in advance.
"""

import contextlib
import json
import math
import os
import time

import keras
import numpy as np
from keras import ops

from benchmarks.ablation_backbone import vqa_with_switches
from simmim_tf.data.anchor_targets import anchor_targets
from simmim_tf.data.region_targets import region_targets
from simmim_tf.data.vqa_dataset import load_split
from simmim_tf.evaluation import accuracy_by_family
from simmim_tf.layers.relational_attention import RelationalAttention
from simmim_tf.machine import describe as machine
from simmim_tf.models import simmim_backbone
from simmim_tf.models.simmim_image_converter import SimMIMImageConverter
from simmim_tf.models.simmim_masked_image_pretrainer import load_image_encoder
from simmim_tf.models.simmim_tokenizer import SimMIMTokenizer
from simmim_tf.models.simmim_vqa_preprocessor import SimMIMVQAPreprocessor
from simmim_tf.models.simmim_vqa_training import SimMIMVQATraining
from simmim_tf.preprocessing.answer_vocabulary import AnswerVocabulary
from simmim_tf.preprocessing.question_tokenizer import QuestionTokenizer
from simmim_tf.training.image_grouped_batches import image_grouped_batches
from simmim_tf.training.input_pipeline import make_dataset
from simmim_tf.training.precise_batch_norm import (
    recompute_batch_norm_statistics as recompute_batch_norm_statistics_of,
)
from simmim_tf.training.run_config import RunConfig
from simmim_tf.training.runs import save_preset_atomically
from simmim_tf.training.training_data import has_scenes


def report_per_run(data, runs, measure, out):
    """Measures each of the comma-separated `runs` with `measure(run)` (a
    JSON-ready dict), prints each result as it comes, and writes {"date",
    "machine", "data", "runs": {run: result}} to `out`."""
    report = {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "data": data, "runs": {}}
    for run in runs.split(","):
        report["runs"][run] = measure(run)
        print(run, json.dumps(report["runs"][run]), flush=True)
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out, "w") as f:
        json.dump(report, f, indent=2)
    return report


class Data:
    """A benchmark data set: splits, vocabularies, encoded questions, subtypes.

    validation_fraction: a share of the training images held out (drawn
    with `validation_seed`, the same for every run of a comparison); the
    budget's checkpoints are then measured on them, and the test split
    once, at the end.
    """

    def __init__(
        self, data_dir, max_sequence_length=24, validation_fraction=0.0, validation_seed=0
    ):
        self.dir = data_dir
        self.train, self.test = load_split(data_dir, "train"), load_split(data_dir, "test")
        self.validation = None
        if validation_fraction:
            held_out = held_out_images(len(self.train.images), validation_fraction, validation_seed)
            is_held_out = np.isin(self.train.image_index, held_out)
            self.validation = self.train.subset(is_held_out)
            self.train = self.train.subset(~is_held_out)
        self.tokenizer = QuestionTokenizer.fit(self.train.questions, max_sequence_length)
        self.answers = AnswerVocabulary.fit(self.train.answers)
        self.train_ids, self.train_answers = self.encode(self.train)
        self.test_ids, _ = self.encode(self.test)
        self.test_subtypes = self.test.question_types
        self.test_inputs = self.inputs(self.test)
        self.image_size = self.train.images.shape[1]
        self._targets = {}

    def inputs(self, split):
        ids, _ = self.encode(split)
        return {
            "images": split.images[split.image_index],
            "token_ids": ids,
            "padding_mask": (ids != 0).astype("int32"),
        }

    def encode(self, split):
        ids, _ = self.tokenizer.encode_batch(split.questions)
        return ids, np.array([self.answers.id(a) for a in split.answers], np.int32)

    def region_targets(self, grid_shape):
        """RegionTargets of the training images on a grid (cached)."""
        if grid_shape not in self._targets:
            self._targets[grid_shape] = region_targets(self.dir, self.train.image_paths, grid_shape)
        return self._targets[grid_shape]

    def anchor_targets(self, grid_shape, patch_size, named_by="description", num_anchors=1):
        """Per training question, the regions of the object(s) it names (cached)."""
        key = ("anchor", grid_shape, patch_size, named_by, num_anchors)
        if key not in self._targets:
            self._targets[key] = anchor_targets(
                self.dir, self.train, grid_shape, patch_size, named_by, num_anchors
            )
        return self._targets[key]

    def evaluate(self, model, split="test"):
        """Accuracy per family, with "by_question_type", on `split` ("test"
        or "validation")."""
        questions = self.test if split == "test" else self.validation
        inputs = self.test_inputs if split == "test" else self.inputs(questions)
        logits = model.predict(inputs, batch_size=256, verbose=0)
        predicted = [self.answers.answers[i] for i in np.argmax(logits, axis=-1)]
        self.last_predicted = predicted
        by_family = accuracy_by_family(predicted, questions.answers, questions.families)
        by_type = accuracy_by_family(predicted, questions.answers, questions.question_types)
        by_type.pop("overall")
        return {**by_family, "by_question_type": by_type}

    def checkpoint_split(self):
        """Where the budget's checkpoints are measured: validation if held out."""
        return "validation" if self.validation is not None else "test"


def held_out_images(num_images, fraction, seed):
    """Indices of a `fraction` of `num_images` images, drawn with `seed`."""
    count = max(1, int(round(fraction * num_images)))
    return np.random.default_rng(seed).choice(num_images, count, replace=False)


class TimeCosineSchedule(keras.callbacks.Callback):
    """Sets the learning rate from the share of the time budget spent:
    linear warm-up over `warmup_steps`, then a cosine from the peak to
    `final_fraction` of it at the end of the budget."""

    def __init__(self, budget, peak, warmup_steps=300, final_fraction=0.02):
        super().__init__()
        self.budget, self.peak = budget, peak
        self.warmup_steps, self.final_fraction = warmup_steps, final_fraction

    def on_train_batch_begin(self, batch, logs=None):
        steps, spent = self.budget.steps, self.budget.trained_s / self.budget.budget_s
        if steps < self.warmup_steps:
            lr = self.peak * (steps + 1) / self.warmup_steps
        else:
            cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, spent)))
            lr = self.peak * (self.final_fraction + (1 - self.final_fraction) * cosine)
        self.model.optimizer.learning_rate.assign(lr)


class BudgetedEvaluation(keras.callbacks.Callback):
    """Stops at `budget_s` of training time; evaluates at each checkpoint.

    Each point of `curve` holds the result of `evaluate()` under `key`, the
    training losses (this epoch's running means, as `fit` logs them) under
    "losses", and whether every weight is still finite; `describe(result)`
    and the total loss are printed as it is taken. The losses and the
    weights tell a collapse (a run that diverged) from slow learning.
    """

    def __init__(
        self, budget_s, evaluate, fractions=(0.25, 0.5, 0.75, 1.0), key="accuracy", describe=None
    ):
        super().__init__()
        self.budget_s = budget_s
        self.checkpoints = [f * budget_s for f in fractions]
        self.evaluate = evaluate
        self.key, self.describe = key, describe or summary
        self.trained_s = 0.0
        self.steps = 0
        self.questions = 0
        self.curve = []

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.steps > 1:  # the first step is mostly tracing the graph
            self.trained_s += time.perf_counter() - self._start
        while self.checkpoints and self.trained_s >= self.checkpoints[0]:
            self.checkpoints.pop(0)
            losses = {k: float(v) for k, v in (logs or {}).items() if "loss" in k}
            finite = all(np.isfinite(np.asarray(w)).all() for w in self.model.weights)
            self.curve.append(
                {
                    "train_s": self.trained_s,
                    "steps": self.steps,
                    self.key: self.evaluate(),
                    "losses": losses,
                    "weights_finite": bool(finite),
                }
            )
            print(
                f"   {self.trained_s / 60:.1f} min, {self.steps} steps: "
                + self.describe(self.curve[-1][self.key])
                + f" | loss {losses.get('loss', float('nan')):.4g}"
                + ("" if finite else ", weights not finite"),
                flush=True,
            )
        if not self.checkpoints:
            self.model.stop_training = True


def summary(accuracy):
    """One line: each family's accuracy and then each question type's."""
    families = [f"{k} {100 * v['accuracy']:.1f}" for k, v in accuracy.items() if "accuracy" in v]
    types = [f"{k} {100 * v['accuracy']:.1f}" for k, v in accuracy["by_question_type"].items()]
    return ", ".join(families) + " | " + ", ".join(types)


class PositionsFromOffsetsOnly(RelationalAttention):
    """`RelationalAttention` whose refined positions only the grounding
    loss's centre-offset target trains (the answers' gradient stopped even
    without scenes), as the library had it until the without-scenes study:
    without scenes they stay at the region centres."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.positions_from_target_only = True


class AnchorLikeness(RelationalAttention):
    """`RelationalAttention` whose relation heads also score each region by
    how much it looks like what lies under the first anchor: a learned
    weight per head (starting at zero) times the cosine similarity of the
    region's features to the anchor's. Without scenes the refined
    positions stay near the region centres, so the other regions of the
    named object itself sit one region side from the anchor and look like
    the "closest" object; a head can then learn to pass them over."""

    def build(self, question_shape, regions_shape):
        super().build(question_shape, regions_shape)
        self.likeness_weight = self.add_weight(
            shape=(self.num_heads,), initializer="zeros", name="likeness_weight"
        )

    def _anchors(self, q, r):
        all_anchor_weights, centres, flat = super()._anchors(q, r)
        # (batch, 1, dim): the first anchor's features; then each region's
        # cosine similarity to them, (batch, regions).
        under = ops.matmul(ops.cast(all_anchor_weights[:, :1], r.dtype), r)
        unit = r / ops.sqrt(ops.sum(r * r, axis=-1, keepdims=True) + 1e-6)
        anchor_unit = under / ops.sqrt(ops.sum(under * under, axis=-1, keepdims=True) + 1e-6)
        self._likeness = ops.squeeze(ops.matmul(unit, ops.transpose(anchor_unit, (0, 2, 1))), -1)
        return all_anchor_weights, centres, flat

    def _offset_bias(self, offset):
        bias = super()._offset_bias(offset)  # (batch, heads, regions)
        weight = ops.reshape(ops.cast(self.likeness_weight, bias.dtype), (1, -1, 1))
        return bias + weight * ops.expand_dims(ops.cast(self._likeness, bias.dtype), 1)


class Swap:
    """Library classes a variant replaces: `layers()` is a context in
    which the backbone builds its layers, `training` the wrapper's class."""

    def __init__(self, relational_attention=None, training=SimMIMVQATraining):
        self.relational_attention = relational_attention
        self.training = training

    @contextlib.contextmanager
    def layers(self):
        if self.relational_attention is None:
            yield
            return
        original = simmim_backbone.RelationalAttention
        simmim_backbone.RelationalAttention = self.relational_attention
        try:
            yield
        finally:
            simmim_backbone.RelationalAttention = original


class AnchorEntropyTraining(SimMIMVQATraining):
    """`SimMIMVQATraining` plus the anchor attention's entropy, weighted by
    `ENTROPY_WEIGHT`, as a loss: without scenes nothing but the answers says
    where an anchor looks, and an anchor spread over several regions sits
    between objects (its position is the attention-weighted mean). The
    penalty asks each anchor to commit to one region, whichever the answers
    favour, with no label."""

    ENTROPY_WEIGHT = 0.1

    def call(self, inputs, training=False):
        if self.grounding_head is not None or self.anchor_weight:
            raise ValueError("anchor_entropy is a without-scenes variant: use --without-scenes")
        regions = self.vqa.backbone.encode_image(inputs["images"], training=training)
        if "image_index" in inputs:
            regions = keras.ops.take(regions, inputs["image_index"], axis=0)
        mask = keras.ops.cast(inputs["padding_mask"], "bool")
        out = self.vqa.answer_from_regions(regions, inputs["token_ids"], mask, training=training)
        if training:
            anchor = keras.ops.cast(out["anchor_attention"], "float32")
            entropy = -keras.ops.sum(anchor * keras.ops.log(anchor + 1e-9), axis=-1)
            self.add_loss(self.ENTROPY_WEIGHT * keras.ops.mean(entropy))
        return {"answers": out["logits"]}


# A recipe's "swap": the name of the library classes it replaces.
SWAPS = {
    None: Swap(),
    "positions_from_offsets_only": Swap(PositionsFromOffsetsOnly),
    "anchor_entropy": Swap(training=AnchorEntropyTraining),
    "anchor_likeness": Swap(AnchorLikeness),
}


# The SimMIM recipe of the benchmarks (docs/reasoning.md has its sweep).
RECIPE = {
    "learning_rate": 1e-3,
    "weight_decay": 0.05,
    # Each weight's gradient clipped to norm 1 (Keras's `clipnorm`); the
    # "global_clipnorm" ablation clips their joint norm instead.
    "clipnorm": 1.0,
    "global_clipnorm": None,
    # Adam's second moment over ~20 steps (Keras's default 0.999: ~1,000):
    # ahead by 3.0 to 4.9 points on CLEVR-2D in three pairs of 60-minute
    # runs, each learning spatial questions 0.999 did not (docs/reasoning.md).
    "beta_2": 0.95,
    "warmup_steps": 300,
    "batch_size": 64,
    "questions_per_image": 4,
    "grounding_weight": 1.0,
    "offset_weight": 1.0,
    # Used where the backbone has relational attention (the tiny preset).
    "anchor_weight": 1.0,
    # How the anchor target finds the named object (simmim_tf.data.anchor_targets).
    "anchor_named_by": "description",
    "label_smoothing": 0.0,
    # Precise BN before every measurement, as `simmim-tf train` does
    # (simmim_tf.training.precise_batch_norm; batch_norm_statistics.py).
    "recompute_batch_norm": True,
}


def recompute_batch_norm_statistics(vqa, data, batches=50, batch_size=64, seed=0):
    """The library's precise BN (simmim_tf.training.precise_batch_norm) on
    `batches` batches of `batch_size` training images drawn with `seed`."""
    rng = np.random.default_rng(seed)
    images = data.train.images[rng.choice(len(data.train.images), (batches, batch_size))]
    stem = vqa.backbone.get_layer("patch_embedding")
    recompute_batch_norm_statistics_of(stem, images)


def train_simmim(
    data, minutes, preset="tiny", overrides=None, recipe=None, seed=0, init_from=None, save_to=None
):
    """Trains a SimMIM variant for `minutes`; returns the result dict.

    overrides: backbone arguments replacing the preset's (the ablations).
    recipe: replaces entries of RECIPE; grounding_weight 0 turns the
    grounding loss off.
    init_from: a `simmim-tf pretrain` folder whose image encoder the model
    starts from (`overrides` must give its architecture).
    save_to: a folder to write the trained model to as a run (a preset with
    its preprocessor and run_config.json), for `simmim-tf export`.
    """
    recipe = {**RECIPE, **(recipe or {})}
    swap = SWAPS[recipe.pop("swap", None)]
    # Batch-norm statistics recomputed over training batches before every
    # measurement instead of their moving averages (batch_norm_statistics.py).
    recomputed = recipe.pop("recompute_batch_norm")
    if recipe.pop("without_scenes", False) or not has_scenes(data.dir):
        # As on data without scenes.jsonl: no object targets at all.
        if recipe["grounding_weight"] or recipe["anchor_weight"]:
            print("without scenes: grounding and anchor losses off", flush=True)
        recipe["grounding_weight"] = recipe["anchor_weight"] = 0.0
    keras.utils.set_random_seed(seed)
    with swap.layers():
        vqa = vqa_with_switches(
            preset,
            len(data.answers),
            data.tokenizer.vocabulary_size,
            data.image_size,
            data.tokenizer.sequence_length,
            overrides,
        )
    if init_from:
        load_image_encoder(vqa.backbone, init_from)
    targets = None
    if recipe["grounding_weight"]:
        targets = data.region_targets(vqa.backbone.grid_shape)
    anchors = None
    if not vqa.backbone.relational:
        recipe["anchor_weight"] = 0.0
    if recipe["anchor_weight"]:
        anchors = data.anchor_targets(
            vqa.backbone.grid_shape,
            vqa.backbone.patch_size,
            recipe["anchor_named_by"],
            vqa.backbone.relational["num_anchors"],
        )
    model = swap.training(
        vqa,
        targets.attribute_sizes if targets else None,
        recipe["grounding_weight"],
        recipe["offset_weight"],
        recipe["anchor_weight"],
    )
    model.compile(
        keras.optimizers.AdamW(
            recipe["learning_rate"],
            weight_decay=recipe["weight_decay"],
            beta_2=recipe["beta_2"],
            clipnorm=recipe["clipnorm"],
            global_clipnorm=recipe["global_clipnorm"],
        ),
        label_smoothing=recipe["label_smoothing"],
    )
    dataset = image_grouped_batches(
        data.train,
        data.train_ids,
        data.train_answers,
        recipe["batch_size"],
        recipe["questions_per_image"],
        targets.targets if targets else None,
        seed=seed,
        anchor_targets=anchors,
    )
    split = data.checkpoint_split()

    def measure(split):
        if recomputed:
            recompute_batch_norm_statistics(vqa, data)
        return data.evaluate(vqa, split)

    budget = BudgetedEvaluation(60 * minutes, lambda: measure(split))
    schedule = TimeCosineSchedule(budget, recipe["learning_rate"], recipe["warmup_steps"])
    model.fit(dataset, epochs=100_000, callbacks=[budget, schedule], verbose=0, shuffle=False)
    if save_to:
        save_run(vqa, data, preset, seed, save_to)
    test = measure("test") if split == "validation" else None
    return _result(vqa, budget, len(data.train), recipe, overrides, test)


def save_run(vqa, data, preset, seed, out_dir):
    """Writes `vqa` as a run folder that `simmim-tf export` and `evaluate` read."""
    vqa.preprocessor = SimMIMVQAPreprocessor(
        tokenizer=SimMIMTokenizer(data.tokenizer.vocabulary),
        image_converter=SimMIMImageConverter(data.image_size),
        answers=data.answers.answers,
        sequence_length=data.tokenizer.sequence_length,
    )
    save_preset_atomically(vqa, out_dir)
    RunConfig(
        data=data.dir,
        preset=preset,
        max_sequence_length=data.tokenizer.sequence_length,
        seed=seed,
    ).save(os.path.join(out_dir, "run_config.json"))


def train_baseline(data, minutes, model, learning_rate=2.5e-4, batch_size=64, seed=0):
    """Trains a compiled-here baseline (plain question batches, Adam)."""
    keras.utils.set_random_seed(seed)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    dataset = make_dataset(data.train, data.train_ids, data.train_answers, batch_size, True, seed)
    budget = BudgetedEvaluation(60 * minutes, lambda: data.evaluate(model))
    model.fit(dataset, epochs=100_000, callbacks=[budget], verbose=0, shuffle=False)
    recipe = {"optimizer": "adam", "learning_rate": learning_rate, "batch_size": batch_size}
    return _result(model, budget, len(data.train), recipe, None)


def _result(model, budget, train_questions, recipe, overrides, test=None):
    """The run's figures; with a validation split, `curve` and "validation"
    are measured on it and "accuracy" is the test split's, measured once."""
    final = budget.curve[-1]
    extra = {"validation": final["accuracy"]} if test is not None else {}
    return {
        **extra,
        "parameters": model.count_params(),
        "train_s": budget.trained_s,
        "steps": budget.steps,
        "epochs": budget.steps * recipe["batch_size"] / train_questions,
        "questions_per_s": budget.steps * recipe["batch_size"] / budget.trained_s,
        "recipe": recipe,
        "overrides": overrides or {},
        "accuracy": test if test is not None else final["accuracy"],
        "curve": budget.curve,
    }


def write_report(report, out, table):
    """RESULTS.json, RESULTS.md (the table) and RESULTS.png (learning curves)."""
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out, "w") as f:
        json.dump(report, f, indent=2)
    stem = os.path.splitext(out)[0]
    with open(stem + ".md", "w") as f:
        f.write(table)
    plot_curves(report, stem + ".png")
    print(table)


def remove_partial(out):
    """Removes what `write_report(report, out + ".partial.json", ...)` wrote as it went."""
    for suffix in (".partial.json", ".partial.md", ".partial.png"):
        if os.path.exists(out + suffix):
            os.remove(out + suffix)


def plot_curves(report, path):
    """Accuracy per family against training minutes, one panel per family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = sorted(
        {
            k
            for r in report["results"]
            for k, v in r["accuracy"].items()
            if isinstance(v, dict) and "accuracy" in v
        }
    )
    fig, axes = plt.subplots(1, len(families), figsize=(3.2 * len(families), 3), squeeze=False)
    for ax, family in zip(axes[0], families, strict=True):
        for r in report["results"]:
            xs = [p["train_s"] / 60 for p in r["curve"]]
            ys = [100 * p["accuracy"].get(family, {}).get("accuracy", np.nan) for p in r["curve"]]
            ax.plot(xs, ys, marker="o", label=r["model"])
        ax.set_title(family)
        ax.set_xlabel("training minutes")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy (%)")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(f"{report['title']} ({report['date']}, {report['machine']})", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def per_type_table(report, key="accuracy"):
    """Markdown: one row per model, a column per family and question type
    (`key`: "accuracy", the test split, or "validation")."""
    results = [{**r, "accuracy": r[key]} for r in report["results"] if key in r]
    families = [
        k
        for k, v in results[0]["accuracy"].items()
        if isinstance(v, dict) and "accuracy" in v and k != "overall"
    ]
    types = sorted(results[0]["accuracy"]["by_question_type"])
    header = ["model", "minutes", "q/s", *families, "overall", *types]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        a = r["accuracy"]
        cells = [r["model"], f"{r['train_s'] / 60:.1f}", f"{r['questions_per_s']:.0f}"]
        cells += [f"{100 * a[f]['accuracy']:.1f}" for f in families]
        cells.append(f"**{100 * a['overall']['accuracy']:.1f}**")
        cells += [f"{100 * a['by_question_type'][t]['accuracy']:.1f}" for t in types]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def new_report(title, data, minutes):
    return {
        "title": title,
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "data": data.dir,
        "train_questions": len(data.train),
        "test_questions": len(data.test),
        "minutes_per_model": minutes,
        "results": [],
    }
