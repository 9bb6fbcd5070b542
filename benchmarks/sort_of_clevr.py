"""SimMIM against the relation-network baselines on Sort-of-CLEVR, at equal
wall-clock budgets on this machine.

Trains each model for the same number of minutes on the same data (the full
Sort-of-CLEVR of Santoro et al. 2017 by default: 10,000 images, the last 200
held out), evaluates on the test split at a quarter, half, three quarters
and all of the budget (the clock is paused while evaluating), and writes a
JSON and a markdown table: accuracy per question family, training time,
questions per second, parameters.

    python benchmarks/sort_of_clevr.py --minutes 5
    python benchmarks/sort_of_clevr.py --models simmim_tiny,cnn_rn --minutes 30

Models: simmim_tiny, simmim_small (SimMIMVQA presets, AdamW 1e-3 with
clipping, the package's defaults, after a linear warm-up of --warmup-steps)
and the baselines cnn_mlp, cnn_rn (benchmarks/baselines, Adam 2.5e-4 as
Santoro et al. used for CLEVR).
"""

import argparse
import json
import os
import platform
import sys
import time

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.baselines.relation_network import cnn_mlp, cnn_rn  # noqa: E402
from simmim_tf.data import sort_of_clevr  # noqa: E402
from simmim_tf.data.vqa_dataset import load_split  # noqa: E402
from simmim_tf.evaluation import accuracy_by_family  # noqa: E402
from simmim_tf.models.simmim_vqa import SimMIMVQA  # noqa: E402
from simmim_tf.preprocessing.answer_vocabulary import AnswerVocabulary  # noqa: E402
from simmim_tf.preprocessing.question_tokenizer import QuestionTokenizer  # noqa: E402
from simmim_tf.training.input_pipeline import make_dataset  # noqa: E402

MODELS = ("simmim_tiny", "simmim_small", "cnn_mlp", "cnn_rn")


def warmup_then_constant(learning_rate, warmup_steps):
    """Linear warm-up from 0 to `learning_rate` over `warmup_steps`, then flat
    (a wall-clock budget has no known step count to decay over)."""
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        decay_steps=1,
        alpha=1.0,  # the "decay" ends where it starts: flat after warm-up
        warmup_target=learning_rate,
        warmup_steps=max(1, warmup_steps),
    )


def build(name, image_size, tokenizer, answers, warmup_steps=0):
    if name.startswith("simmim_"):
        model = SimMIMVQA.from_preset(
            name.split("_", 1)[1],
            num_answers=len(answers),
            vocabulary_size=tokenizer.vocabulary_size,
            image_size=image_size,
            max_sequence_length=tokenizer.sequence_length,
        )
        learning_rate = warmup_then_constant(1e-3, warmup_steps) if warmup_steps else 1e-3
        model.compile(learning_rate=learning_rate)
        return model
    factory = {"cnn_mlp": cnn_mlp, "cnn_rn": cnn_rn}[name]
    model = factory(image_size, tokenizer.vocabulary_size, len(answers))
    model.compile(
        optimizer=keras.optimizers.Adam(2.5e-4),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model


class BudgetedEvaluation(keras.callbacks.Callback):
    """Stops at `budget_s` of training time; evaluates at each checkpoint."""

    def __init__(self, budget_s, evaluate, fractions=(0.25, 0.5, 0.75, 1.0)):
        super().__init__()
        self.budget_s = budget_s
        self.checkpoints = [f * budget_s for f in fractions]
        self.evaluate = evaluate
        self.trained_s = 0.0
        self.steps = 0
        self.curve = []

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.trained_s += time.perf_counter() - self._start
        self.steps += 1
        while self.checkpoints and self.trained_s >= self.checkpoints[0]:
            self.checkpoints.pop(0)
            self.curve.append(
                {"train_s": self.trained_s, "steps": self.steps, "accuracy": self.evaluate()}
            )
        if not self.checkpoints:
            self.model.stop_training = True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="benchmarks/data/sort_of_clevr_10000")
    parser.add_argument("--num-images", type=int, default=10000, help="if --data must be made")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--minutes", type=float, default=30.0, help="training budget per model")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--warmup-steps",
        type=int,
        default=500,
        help="SimMIM: linear learning-rate warm-up over these steps, then flat (0: none)",
    )
    parser.add_argument("--out", default="benchmarks/results/sort_of_clevr.json")
    args = parser.parse_args()
    models = args.models.split(",")
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {MODELS}")

    if not os.path.isfile(os.path.join(args.data, "questions.jsonl")):
        sort_of_clevr.generate(args.data, num_images=args.num_images, seed=0)
    train, test = load_split(args.data, "train"), load_split(args.data, "test")
    tokenizer = QuestionTokenizer.fit(train.questions, 16)
    answers = AnswerVocabulary.fit(train.answers)

    def encode(split):
        ids, _ = tokenizer.encode_batch(split.questions)
        return ids, np.array([answers.id(a) for a in split.answers], np.int32)

    # Question type of each test question (closest, furthest, count, ...),
    # from the line of questions.jsonl it came from.
    with open(os.path.join(args.data, "questions.jsonl")) as f:
        lines = f.read().splitlines()
    subtypes = [
        json.loads(lines[int(source.rsplit(":", 1)[1]) - 1]).get("subtype", "?")
        for source in test.sources
    ]

    train_ids, train_answers = encode(train)
    test_ids, _ = encode(test)
    test_inputs = {
        "images": test.images[test.image_index],
        "token_ids": test_ids,
        "padding_mask": (test_ids != 0).astype("int32"),
    }
    dataset = make_dataset(train, train_ids, train_answers, args.batch_size, shuffle=True)

    results = []
    for name in models:
        keras.utils.set_random_seed(0)
        model = build(name, train.images.shape[1], tokenizer, answers, args.warmup_steps)

        def evaluate(model=model):
            logits = model.predict(test_inputs, batch_size=256, verbose=0)
            predicted = [answers.answers[i] for i in np.argmax(logits, axis=-1)]
            by_family = accuracy_by_family(predicted, test.answers, test.families)
            by_type = accuracy_by_family(predicted, test.answers, subtypes)
            by_type.pop("overall")
            return {**by_family, "by_question_type": by_type}

        budget = BudgetedEvaluation(60 * args.minutes, evaluate)
        print(f"== {name}: {model.count_params():,} parameters, {args.minutes} min", flush=True)
        model.fit(dataset, epochs=10_000, callbacks=[budget], verbose=2, shuffle=False)
        final = budget.curve[-1]
        results.append(
            {
                "model": name,
                "parameters": model.count_params(),
                "train_s": budget.trained_s,
                "steps": budget.steps,
                "epochs": budget.steps * args.batch_size / len(train),
                "questions_per_s": budget.steps * args.batch_size / budget.trained_s,
                "accuracy": final["accuracy"],
                "curve": budget.curve,
            }
        )
        print(json.dumps(results[-1]["accuracy"]), flush=True)
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out + ".partial", "w") as f:  # what is done, if a later model fails
            json.dump(results, f, indent=2)

    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "data": args.data,
        "train_questions": len(train),
        "test_questions": len(test),
        "minutes_per_model": args.minutes,
        "batch_size": args.batch_size,
        "simmim_warmup_steps": args.warmup_steps,
        "results": results,
    }
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    table = format_table(report)
    with open(os.path.splitext(args.out)[0] + ".md", "w") as f:
        f.write(table)
    print(table)


def format_table(report):
    lines = [
        f"Sort-of-CLEVR ({report['train_questions']} training, {report['test_questions']} test "
        f"questions), {report['minutes_per_model']} min of training per model, batch "
        f"{report['batch_size']}; {report['date']}, {report['machine']}",
        "",
        "| model | parameters | minutes | non-relational | relational | overall | epochs "
        "| questions/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        for point in r["curve"]:
            a = point["accuracy"]
            lines.append(
                f"| {r['model']} | {r['parameters']:,} | {point['train_s'] / 60:.1f} "
                f"| {100 * a['non_relational']['accuracy']:.2f}% "
                f"| {100 * a['relational']['accuracy']:.2f}% "
                f"| {100 * a['overall']['accuracy']:.2f}% "
                f"| {point['steps'] * report['batch_size'] / report['train_questions']:.2f} "
                f"| {r['questions_per_s']:.0f} |"
            )
    types = [r for r in report["results"] if "by_question_type" in r["accuracy"]]
    if types:
        lines += ["", "Accuracy per question type at the end of the budget:", ""]
        for r in types:
            parts = [
                f"{name} {100 * a['accuracy']:.1f}%"
                for name, a in sorted(r["accuracy"]["by_question_type"].items())
            ]
            lines.append(f"- {r['model']}: " + ", ".join(parts))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
