"""Video question answering on moving shapes: the streaming memory against
single-frame and all-frames-at-once baselines, at equal training time.

Variants (each a `SimMIMVideoQA` whose `clip_memory` is swapped):
    streaming    the library's: slots updated once per frame, in order
    last_frame   the slots read the last frame only (a still-image model)
    mean_frames  the slots read the mean of the frames' regions (order lost)
    joint        the slots read every frame's regions at once, with their
                 time features, twice (space-time attention: memory grows
                 with the clip)

The clips' training split loses a validation share (whole clips, the same
for every seed); checkpoints are measured on it, the test split once at the
end. The commonest training answer of each question type is reported as
the floor.

    python -m simmim_tf.cli data moving-shapes --out benchmarks/data/moving_shapes
    python -m benchmarks.video_qa --minutes 10 --seed 0
"""

import argparse
import collections
import os
import time

import keras
import numpy as np
from keras import ops

from benchmarks.budgeted_training import (
    BudgetedEvaluation,
    TimeCosineSchedule,
    machine,
    remove_partial,
    write_report,
)
from simmim_tf.data.clip_dataset import load_clip_split, split_off_clips
from simmim_tf.evaluation import accuracy_by_family
from simmim_tf.models.simmim_video_qa import SimMIMVideoQA
from simmim_tf.preprocessing.answer_vocabulary import AnswerVocabulary
from simmim_tf.preprocessing.question_tokenizer import QuestionTokenizer
from simmim_tf.preprocessing.time_features import time_features
from simmim_tf.training.clip_batches import clip_grouped_batches


class LastFrame(SimMIMVideoQA):
    def clip_memory(self, clip_regions, training=False):
        state, _ = self.memory(clip_regions[:, -1:], training=training)
        return state


class MeanFrames(SimMIMVideoQA):
    def clip_memory(self, clip_regions, training=False):
        mean = ops.mean(clip_regions, axis=1, keepdims=True)
        state, _ = self.memory(mean, training=training)
        return state


class Joint(SimMIMVideoQA):
    READS = 2

    def clip_memory(self, clip_regions, training=False):
        memory, (clips, frames, regions, dim) = self.memory, clip_regions.shape
        if not memory.built:
            memory.build(clip_regions.shape)
        clips = ops.shape(clip_regions)[0]
        when = np.stack([time_features(t) for t in range(frames)])  # (frames, features)
        when = memory.time_projection(ops.convert_to_tensor(when, self.compute_dtype))
        context = clip_regions + when[None, :, None, :]
        context = ops.reshape(context, (clips, frames * regions, dim))
        state = memory.initial_state(clips)
        for _ in range(self.READS):
            state, _ = memory.read(state, context, training=training)
            state = memory.update(state, training=training)
        return state


VARIANTS = {
    "streaming": SimMIMVideoQA,
    "last_frame": LastFrame,
    "mean_frames": MeanFrames,
    "joint": Joint,
}
RECIPE = {"learning_rate": 1e-3, "weight_decay": 0.05, "batch_size": 64, "questions_per_clip": 4}


def evaluate(model, clip_set, tokenizer, answers, batch_size=128):
    """Accuracy per family and per question type."""
    token_ids, _ = tokenizer.encode_batch(clip_set.questions)
    predicted = []
    for start in range(0, len(clip_set), batch_size):
        rows = slice(start, start + batch_size)
        clips, local = np.unique(clip_set.clip_index[rows], return_inverse=True)
        logits = model(
            {
                "frames": clip_set.frames[clips],
                "clip_index": local.astype(np.int32),
                "token_ids": token_ids[rows],
                "padding_mask": (token_ids[rows] != 0).astype(np.int32),
            }
        )
        predicted += [answers.answers[i] for i in np.argmax(np.asarray(logits), axis=-1)]
    return accuracy_by_family(
        predicted, clip_set.answers, clip_set.families, question_types=clip_set.question_types
    )


def commonest_answers(train, test):
    """Accuracy of answering each test question with its type's commonest training answer."""
    counts = collections.defaultdict(collections.Counter)
    for t, a in zip(train.question_types, train.answers, strict=True):
        counts[t][a] += 1
    guess = [counts[t].most_common(1)[0][0] for t in test.question_types]
    return accuracy_by_family(
        guess, test.answers, test.families, question_types=test.question_types
    )


def train_variant(name, train, validation, test, tokenizer, answers, minutes, seed):
    keras.utils.set_random_seed(seed)
    size = train.frames.shape[2]
    model = VARIANTS[name].from_preset(
        "tiny",
        num_answers=len(answers),
        vocabulary_size=tokenizer.vocabulary_size,
        image_size=size,
        max_sequence_length=tokenizer.sequence_length,
    )
    optimizer = keras.optimizers.AdamW(
        RECIPE["learning_rate"], weight_decay=RECIPE["weight_decay"], beta_2=0.95, clipnorm=1.0
    )
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer, loss, metrics=["accuracy"])
    token_ids, _ = tokenizer.encode_batch(train.questions)
    answer_ids = np.array([answers.id(a) for a in train.answers], np.int32)
    dataset = clip_grouped_batches(
        train, token_ids, answer_ids, RECIPE["batch_size"], RECIPE["questions_per_clip"], seed
    )
    budget = BudgetedEvaluation(
        60 * minutes, lambda: evaluate(model, validation, tokenizer, answers)
    )
    schedule = TimeCosineSchedule(budget, RECIPE["learning_rate"], warmup_steps=200)
    model.fit(dataset, epochs=100_000, callbacks=[budget, schedule], verbose=0)
    return {
        "model": name,
        "steps": budget.steps,
        "train_minutes": budget.trained_s / 60,
        "parameters": model.count_params(),
        "curve": budget.curve,
        "validation": budget.curve[-1]["accuracy"],
        "accuracy": evaluate(model, test, tokenizer, answers),
    }


def table(report, key):
    types = list(report["floor"]["by_question_type"])
    families = [f for f in report["floor"] if f not in ("by_question_type",)]
    floor = [("commonest answer per type", "", report["floor"])] if key == "accuracy" else []
    rows = floor + [(r["model"], r["steps"], r[key]) for r in report["results"]]
    head = ["model", "steps", *families, *types]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, steps, acc in rows:
        by_type = acc["by_question_type"]
        cells = [f"{100 * acc[f]['accuracy']:.1f}" if f in acc else "–" for f in families]
        cells += [f"{100 * by_type[t]['accuracy']:.1f}" if t in by_type else "–" for t in types]
        lines.append(f"| {name} | {steps} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default="benchmarks/data/moving_shapes", help="clip folder")
    parser.add_argument("--minutes", type=float, default=10.0, help="training time per variant")
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"comma-separated, of {list(VARIANTS)}"
    )
    parser.add_argument("--validation-fraction", type=float, default=0.05)
    parser.add_argument("--max-sequence-length", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/video_qa/video_qa.json")
    args = parser.parse_args(argv)
    variants = args.variants.split(",")
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")

    everything = load_clip_split(args.data, "train")
    test = load_clip_split(args.data, "test")
    if not 0 < args.validation_fraction < 1:
        parser.error(
            "--validation-fraction must be between 0 and 1 (checkpoints are measured on it)"
        )
    train, validation = split_off_clips(everything, args.validation_fraction)
    tokenizer = QuestionTokenizer.fit(train.questions, args.max_sequence_length)
    answers = AnswerVocabulary.fit(train.answers)
    report = {
        "title": f"Video QA, {os.path.basename(args.data)}",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine(),
        "data": args.data,
        "minutes": args.minutes,
        "seed": args.seed,
        "clips": {
            "train": len(train.frames),
            "validation": len(validation.frames),
            "test": len(test.frames),
        },  # fmt: skip
        "questions": {"train": len(train), "validation": len(validation), "test": len(test)},
        "floor": commonest_answers(train, test),
        "results": [],
    }
    tables = lambda r: (  # noqa: E731
        "Test split (%):\n\n" + table(r, "accuracy") + "\n\nValidation (%):\n\n"
        + table(r, "validation")
    )  # fmt: skip
    for name in variants:
        print(f"== {name}", flush=True)
        report["results"].append(
            train_variant(
                name, train, validation, test, tokenizer, answers, args.minutes, args.seed
            )
        )
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        write_report(report, args.out + ".partial.json", tables(report))
    write_report(report, args.out, tables(report))
    remove_partial(args.out)


if __name__ == "__main__":
    main()
