"""Image–text retrieval on CLEVR-2D's captions: SimMIMRetriever variants and a
bag-of-words text tower at equal wall-clock budget, then the device
variants of one of them.

    python benchmarks/retrieval.py --data benchmarks/data/clevr2d --minutes 8 \\
        --variants image_layers,tiny,sigmoid,bag_of_words --export image_layers

Each variant trains on the training split's captions (every image once per
epoch with one of its two captions drawn anew; identical captions count as
positives) for `--minutes` of training time, with AdamW, a linear warm-up
and a cosine decay over the time budget. It is evaluated on the test split
(500 images, 1,000 captions) at a quarter, half, three quarters and all of
the budget: Recall@1/5/10 both ways and RSUM, as the COCO protocol counts
them (a caption fits every image one of whose captions has its words).

`--export VARIANT` then exports that variant's towers (float32, float16,
dynamic, int8) and reports each one's Recall@K, agreement with Keras and
milliseconds per image and per query on 1 and 2 threads
(`simmim_tf.export.retrieval_report`).

Writes a JSON and a markdown table (benchmarks/results/retrieval_clevr2d.*).
"""

import argparse
import datetime
import json
import os
import sys
import tempfile
import time

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.budgeted_training import TimeCosineSchedule, machine  # noqa: E402
from simmim_tf.data.caption_dataset import load_captions  # noqa: E402
from simmim_tf.models import SimMIMRetriever, SimMIMRetrieverPreprocessor  # noqa: E402
from simmim_tf.retrieval_recall import RECALL_AT, recall_at_k  # noqa: E402
from simmim_tf.training.retrieval_trainer import caption_pairs  # noqa: E402

# name: (backbone overrides of the tiny preset, retriever arguments)
VARIANTS = {
    "tiny": ({}, {}),
    "image_layers": ({"image_layers": 2}, {}),
    "sigmoid": ({"image_layers": 2}, {"contrastive_loss": "sigmoid"}),
    # The baseline a user would otherwise take: a bag-of-words text tower
    # (word and position embeddings averaged; no transformer block).
    "bag_of_words": ({"image_layers": 2, "question_layers": 0}, {}),
}
RECIPE = {"learning_rate": 1e-3, "weight_decay": 0.05, "batch_size": 64, "warmup_steps": 200}
MAX_SEQUENCE_LENGTH = 48  # CLEVR-2D's longest caption has 46 words


class TimedEvaluation(keras.callbacks.Callback):
    """Stops at `budget_s` of training time (the first, tracing step not
    counted) and evaluates at each checkpoint; `TimeCosineSchedule` reads
    its `steps`, `trained_s` and `budget_s`."""

    def __init__(self, budget_s, evaluate, fractions=(0.25, 0.5, 0.75, 1.0)):
        super().__init__()
        self.budget_s, self.evaluate = budget_s, evaluate
        self.checkpoints = [f * budget_s for f in fractions]
        self.trained_s, self.steps, self.curve = 0.0, 0, []

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.steps > 1:
            self.trained_s += time.perf_counter() - self._start
        while self.checkpoints and self.trained_s >= self.checkpoints[0]:
            self.checkpoints.pop(0)
            recall = self.evaluate()
            self.curve.append({"train_s": self.trained_s, "steps": self.steps, "recall": recall})
            print(
                f"   {self.trained_s / 60:.1f} min, {self.steps} steps: {_line(recall)}", flush=True
            )
        if not self.checkpoints:
            self.model.stop_training = True


def _line(r):
    return ", ".join(f"{k} {v:.1f}" for k, v in r.items() if k.endswith("r1") or k == "rsum")


def train_variant(train, test, preprocessor, minutes, overrides, arguments, seed=0):
    keras.utils.set_random_seed(seed)
    model = SimMIMRetriever.from_preset("tiny", preprocessor=preprocessor, **arguments, **overrides)
    model.compile(
        keras.optimizers.AdamW(
            RECIPE["learning_rate"], weight_decay=RECIPE["weight_decay"], clipnorm=1.0
        )
    )
    tokenizer = preprocessor.caption_tokenizer()
    ids, mask = tokenizer.encode_batch(train.captions)
    dataset = caption_pairs(train, ids, mask, RECIPE["batch_size"], seed)
    relevance = test.relevance()

    def evaluate():
        return recall_at_k(
            model.embed_images(test.images), model.embed_texts(test.captions), relevance
        )

    budget = TimedEvaluation(60 * minutes, evaluate)
    schedule = TimeCosineSchedule(budget, RECIPE["learning_rate"], RECIPE["warmup_steps"])
    # The preprocessor stays attached (evaluation embeds raw captions); it
    # passes the pipeline's token ids through.
    model.fit(dataset, epochs=100_000, callbacks=[budget, schedule], verbose=0, shuffle=False)
    return model, {
        "parameters": model.count_params(),
        "steps": budget.steps,
        "pairs_per_s": budget.steps * RECIPE["batch_size"] / max(budget.trained_s, 1e-9),
        "curve": budget.curve,
        "recall": budget.curve[-1]["recall"],
        "overrides": overrides,
        "arguments": arguments,
    }


def chance(relevance, ks=RECALL_AT):
    """Expected Recall@K of a random ranking, both ways."""
    out = {}
    for name, rel in (("image_to_text", relevance.T), ("text_to_image", relevance)):
        n, relevant = rel.shape[1], rel.sum(axis=1)
        # P(no relevant item in the top k) = C(n - r, k) / C(n, k)
        for k in ks:
            miss = np.ones(len(relevant))
            for j in range(k):
                miss *= np.clip((n - relevant - j) / (n - j), 0, 1)
            out[f"{name}_r{k}"] = float(100 * np.mean(1 - miss))
    out["rsum"] = float(sum(v for v in out.values()))
    return out


def table(report):
    header = (
        ["model", "pairs/s", "steps"]
        + [f"{d} R@{k}" for d in ("i→t", "t→i") for k in RECALL_AT]
        + ["RSUM"]
    )
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]

    def cells(r):
        return [f"{r[f'{d}_r{k}']:.1f}" for d in ("image_to_text", "text_to_image")
                for k in RECALL_AT] + [f"**{r['rsum']:.1f}**"]  # fmt: skip

    lines.append("| random ranking | | | " + " | ".join(cells(report["chance"])) + " |")
    for name, v in report["variants"].items():
        lines.append(
            f"| `{name}` | {v['pairs_per_s']:.0f} | {v['steps']} | "
            + " | ".join(cells(v["recall"]))
            + " |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="data folder with captions.jsonl")
    parser.add_argument("--minutes", type=float, default=8.0, help="training time per variant")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated")
    parser.add_argument("--export", default="", help="a variant to export and report (or none)")
    parser.add_argument("--out", default="benchmarks/results/retrieval_clevr2d.json")
    args = parser.parse_args(argv)
    names = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown or (args.export and args.export not in names):
        parser.error(f"unknown variant(s) {unknown or args.export}; choose from {list(VARIANTS)}")

    train = load_captions(args.data, "train")
    test = load_captions(args.data, "test")
    preprocessor = SimMIMRetrieverPreprocessor.from_data(
        train.captions, train.images.shape[1], MAX_SEQUENCE_LENGTH
    )
    report = {
        "command": "python " + " ".join(sys.argv),
        "date": datetime.datetime.now().isoformat(timespec="minutes"),
        "machine": machine(),
        "data": args.data,
        "train": {"images": len(train.images), "captions": len(train)},
        "test": {"images": len(test.images), "captions": len(test)},
        "minutes": args.minutes,
        "recipe": RECIPE,
        "chance": chance(test.relevance()),
        "variants": {},
    }
    for name in names:
        print(f"== {name}", flush=True)
        model, result = train_variant(train, test, preprocessor, args.minutes, *VARIANTS[name])
        report["variants"][name] = result
        _write(report, args.out)
        if name == args.export:
            report["export"] = export_and_report(model, args.data)
            _write(report, args.out)
    print(table(report))


def export_and_report(model, data_dir):
    from simmim_tf.export.retrieval_export import export_retriever
    from simmim_tf.export.retrieval_report import retrieval_report
    from simmim_tf.training.runs import save_preset_atomically

    variants = ("float32", "float16", "dynamic", "int8")
    with tempfile.TemporaryDirectory() as scratch:
        run, export = os.path.join(scratch, "run"), os.path.join(scratch, "export")
        save_preset_atomically(model, run)
        export_retriever(run, export, data_dir, variants, formats=("tflite",))
        report = retrieval_report(export, run, data_dir, variants)
        with open(os.path.join(export, "retrieval_report.md")) as f:
            report["table"] = f.read()
    print(report["table"])
    return report


def _write(report, out):
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out, "w") as f:
        json.dump(report, f, indent=2)
    with open(os.path.splitext(out)[0] + ".md", "w") as f:
        f.write(table(report))
        if "export" in report:
            f.write("\n" + report["export"]["table"])


if __name__ == "__main__":
    main()
