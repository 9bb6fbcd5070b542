"""How much a model that never sees the image gains on CLEVR-2D.

The generator balances answers per question type and per set of attributes
named (simmim_tf/data/clevr2d.py). This measures what is left: a
question-only model (word embedding + bidirectional LSTM, the "Q-type +
LSTM" blind baseline of Johnson et al. 2017) trained on the training
questions, against two answer priors, on the test split:

    family mode    the most common training answer of the question's family
    subtype mode   the most common training answer of its type (e.g. compare
                   color), "Q-type mode" in Johnson et al. 2017

A question-only gain of a few points over the subtype mode means the words
carry little more than the question type. Over the family mode the gain is
larger by construction where a family mixes answer types (query: colour,
shape or size).

With --simmim-minutes M it also trains SimMIM (tiny preset, the package's
defaults) for M minutes of training time on the same questions with their
images, and reports its accuracy in the same table.

    python -m benchmarks.clevr2d_question_only                  # 10,000 images
    python -m benchmarks.clevr2d_question_only --simmim-minutes 15
    python -m benchmarks.clevr2d_question_only --num-images 2000 --epochs 3

Writes benchmarks/results/clevr2d_question_only.{json,md}.
"""

import argparse
import collections
import datetime
import json
import os
import sys
import time

import keras
import numpy as np

from simmim_tf import machine
from simmim_tf.data import clevr2d
from simmim_tf.data.vqa_dataset import read_questions
from simmim_tf.preprocessing.answer_vocabulary import AnswerVocabulary
from simmim_tf.preprocessing.question_tokenizer import QuestionTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))


def question_only_model(vocabulary_size, num_answers):
    tokens = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(vocabulary_size, 64, mask_zero=True)(tokens)
    x = keras.layers.Bidirectional(keras.layers.LSTM(128))(x)
    x = keras.layers.Dense(256, activation="relu")(x)
    model = keras.Model(tokens, keras.layers.Dense(num_answers)(x))
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def mode_accuracy(train, test, key):
    """Accuracy of answering each test question with its group's commonest training answer."""
    modes = collections.defaultdict(collections.Counter)
    for r in train:
        modes[key(r)][r["answer"]] += 1
    return [r["answer"] == modes[key(r)].most_common(1)[0][0] for r in test]


def simmim_correct(args):
    """Trains SimMIM tiny for args.simmim_minutes (benchmarks/budgeted_training.py);
    (right or wrong per test question, the run's result with its curve)."""
    from benchmarks.budgeted_training import Data, train_simmim

    data = Data(args.data, 24)
    result = train_simmim(data, args.simmim_minutes)
    print(f"SimMIM tiny: {result['steps']} steps, {result['epochs']:.2f} epochs")
    correct = [p == a for p, a in zip(data.last_predicted, data.test.answers, strict=True)]
    return correct, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.path.join(HERE, "data", "clevr2d"))
    parser.add_argument("--num-images", type=int, default=10000, help="when generating --data")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument("--simmim-minutes", type=float, default=0.0)
    args = parser.parse_args()

    if not os.path.isfile(os.path.join(args.data, "questions.jsonl")):
        clevr2d.generate(args.data, args.num_images, seed=0)
    records = read_questions(args.data)
    train = [r for r in records if r["split"] == "train"]
    test = [r for r in records if r["split"] == "test"]
    tokenizer = QuestionTokenizer.fit([r["question"] for r in train], 24)
    answers = AnswerVocabulary.fit([r["answer"] for r in train])
    x_train, _ = tokenizer.encode_batch([r["question"] for r in train])
    x_test, _ = tokenizer.encode_batch([r["question"] for r in test])
    y_train = np.array([answers.id(r["answer"]) for r in train])

    keras.utils.set_random_seed(0)
    model = question_only_model(tokenizer.vocabulary_size, len(answers))
    start = time.time()
    model.fit(x_train, y_train, batch_size=256, epochs=args.epochs, verbose=2)
    train_s = time.time() - start
    predicted = [answers.answers[i] for i in model.predict(x_test, verbose=0).argmax(-1)]
    blind = [p == r["answer"] for p, r in zip(predicted, test, strict=True)]
    simmim, simmim_run = simmim_correct(args) if args.simmim_minutes else (None, None)
    family_mode = mode_accuracy(train, test, lambda r: r["family"])
    subtype_mode = mode_accuracy(train, test, lambda r: (r["family"], r["subtype"]))

    rows = {}
    for family in sorted({r["family"] for r in test}) + ["overall"]:
        pick = np.array([family in ("overall", r["family"]) for r in test])
        rows[family] = {
            "questions": int(sum(pick)),
            "question_only": float(np.mean(np.array(blind)[pick])),
            "family_mode": float(np.mean(np.array(family_mode)[pick])),
            "subtype_mode": float(np.mean(np.array(subtype_mode)[pick])),
        }
        if simmim is not None:
            rows[family]["simmim_tiny"] = float(np.mean(np.array(simmim)[pick]))
    result = {
        "date": datetime.date.today().isoformat(),
        "machine": machine.describe(),
        "command": "python " + " ".join(sys.argv),
        "data": args.data,
        "train_questions": len(train),
        "test_questions": len(test),
        "epochs": args.epochs,
        "train_seconds": round(train_s, 1),
        "simmim_minutes": args.simmim_minutes,
        "accuracy": rows,
        "simmim_run": simmim_run,
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "clevr2d_question_only.json"), "w") as f:
        json.dump(result, f, indent=2)
    lines = [
        f"CLEVR-2D, question-only model vs answer priors ({result['date']}, "
        f"{result['machine']}; {len(train)} train / {len(test)} test questions)",
        "",
        "| family | questions | question-only | family mode | subtype mode "
        "| gain over subtype mode |" + (" SimMIM tiny |" if simmim is not None else ""),
        "|---|---|---|---|---|---|" + ("---|" if simmim is not None else ""),
    ]
    for family, r in rows.items():
        gain = 100 * (r["question_only"] - r["subtype_mode"])
        lines.append(
            f"| {family} | {r['questions']} | {r['question_only']:.1%} | {r['family_mode']:.1%} "
            f"| {r['subtype_mode']:.1%} | {gain:+.1f} points |"
            + (f" {r['simmim_tiny']:.1%} |" if simmim is not None else "")
        )
    if simmim_run is not None:
        from benchmarks.budgeted_training import per_type_table, plot_curves

        report = {
            **result,
            "title": "CLEVR-2D",
            "results": [{"model": "simmim_tiny", **simmim_run}],
        }
        plot_curves(report, os.path.join(args.out, "clevr2d_question_only.png"))
        lines += ["", "SimMIM tiny per family and question type (%):", "", per_type_table(report)]
    with open(os.path.join(args.out, "clevr2d_question_only.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
