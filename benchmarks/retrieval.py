"""Image–text retrieval on CLEVR-2D's captions: SimMIMRetriever variants and a
bag-of-words text tower at equal wall-clock budget, then the device
variants of one of them.

    python -m benchmarks.retrieval --data benchmarks/data/clevr2d --minutes 8 \\
        --variants image_layers,tiny,sigmoid,bag_of_words --export image_layers

Each variant trains on the training split's captions (every image once per
epoch with one of its two captions drawn anew; identical captions count as
positives) for `--minutes` of training time, with AdamW, a linear warm-up
and a cosine decay over the time budget. It is evaluated on the test split
(500 images, 1,000 captions) at a quarter, half, three quarters and all of
the budget: Recall@1/5/10 both ways and RSUM, as the COCO protocol counts
them (a caption fits every image one of whose captions has its words).
CLEVR-2D's relation captions ("a large red circle to the left of a small
gray square") are true of more images than the one they were written for;
with the scenes, each variant is also scored against every image a caption
truly describes (`scene_relevance`), the figure the docs quote.

`--export VARIANT` then exports that variant's towers (float32, float16,
dynamic, int8) and reports each one's Recall@K, agreement with Keras and
milliseconds per image and per query on 1 and 2 threads
(`simmim_tf.export.retrieval_report`).

`--keep-run DIR` saves the exported variant's preset there (for `simmim-tf
export`, `index` and `search`).

Writes a JSON and a markdown table (benchmarks/results/retrieval_clevr2d.*).
"""

import argparse
import collections
import datetime
import json
import os
import sys
import tempfile

import keras
import numpy as np

from benchmarks.budgeted_training import (
    BudgetedEvaluation,
    TimeCosineSchedule,
    machine,
)
from simmim_tf.data.caption_dataset import load_captions
from simmim_tf.models import SimMIMRetriever, SimMIMRetrieverPreprocessor
from simmim_tf.retrieval_recall import RECALL_AT, recall_at_k
from simmim_tf.training.caption_trainer import caption_pairs

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


def _line(r):
    line = ", ".join(f"{k} {v:.1f}" for k, v in r.items() if k.endswith("r1") or k == "rsum")
    if "by_scene" in r:
        line += "; by scene: " + _line(r["by_scene"])
    return line


def scene_relevance(data_dir, captions):
    """bool (captions, images): caption t is true of image i by i's scene. A
    listing caption if it lists i's objects from left to right; a relation
    caption "a X to the left of a Y" if i has an object described X left of
    another described Y (the descriptions `simmim_tf.data.clevr2d` writes)."""
    from simmim_tf.data.clevr2d import ATTRIBUTES, describe
    from simmim_tf.data.vqa_dataset import read_scenes

    scenes = read_scenes(data_dir)

    def name(o):
        return describe({a: o["size_name"] if a == "size" else o[a] for a in ATTRIBUTES})

    facts = []  # per image: (its listing, {(left name, right name)})
    for path in captions.image_paths:
        objects = sorted(scenes[path], key=lambda o: o["x"])
        listing = f"{len(objects)} objects, from left to right: " + ", ".join(
            f"a {name(o)}" for o in objects
        )
        pairs = {(name(a), name(b)) for a in objects for b in objects if a["x"] < b["x"]}
        facts.append((listing, pairs))
    relevance = np.zeros((len(captions), len(captions.images)), bool)
    for t, caption in enumerate(captions.captions):
        for relation, swap in ((" to the left of ", False), (" to the right of ", True)):
            if relation in caption:
                x, y = (part.removeprefix("a ") for part in caption.split(relation))
                pair = (y, x) if swap else (x, y)
                relevance[t] = [pair in pairs for _, pairs in facts]
                break
        else:
            relevance[t] = [caption == listing for listing, _ in facts]
    # The image a caption was written for always fits it.
    relevance[np.arange(len(captions)), captions.image_index] = True
    return relevance


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
    truth = getattr(test, "scene_truth", None)

    def evaluate():
        images, texts = model.embed_images(test.images), model.embed_texts(test.captions)
        recall = recall_at_k(images, texts, relevance)
        if truth is not None:
            recall["by_scene"] = recall_at_k(images, texts, truth)
            listing = np.array([c[0].isdigit() for c in test.captions])
            for kind, keep in (("listing", listing), ("relation", ~listing)):
                # text→image for one kind of caption, against the scenes.
                r = recall_at_k(images, texts[keep], truth[keep])
                recall[f"by_scene_{kind}"] = {
                    k: v for k, v in r.items() if k.startswith("text_to_image")
                }
        return recall

    budget = BudgetedEvaluation(60 * minutes, evaluate, key="recall", describe=_line)
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
    scored = {n: v for n, v in report["variants"].items() if "by_scene" in v["recall"]}
    if scored:
        lines += ["", "Against every image a caption truly describes (from the scenes):", ""]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines.append("| random ranking | | | " + " | ".join(cells(report["scene_chance"])) + " |")
        for name, v in scored.items():
            lines.append(
                f"| `{name}` | {v['pairs_per_s']:.0f} | {v['steps']} | "
                + " | ".join(cells(v["recall"]["by_scene"]))
                + " |"
            )
        lines += ["", "text→image by kind of caption, against the scenes:", ""]
        lines += ["| model | kind | R@1 | R@5 | R@10 |", "|---|---|---|---|---|"]
        for name, v in scored.items():
            for kind in ("listing", "relation"):
                r = v["recall"][f"by_scene_{kind}"]
                recalls = " | ".join(f"{r[f'text_to_image_r{k}']:.1f}" for k in RECALL_AT)
                lines.append(f"| `{name}` | {kind} | {recalls} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="data folder with captions.jsonl")
    parser.add_argument("--minutes", type=float, default=8.0, help="training time per variant")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated")
    parser.add_argument("--export", default="", help="a variant to export and report (or none)")
    parser.add_argument("--keep-run", default="", help="save the exported variant's preset here")
    parser.add_argument("--out", default="benchmarks/results/retrieval_clevr2d.json")
    parser.add_argument(
        "--tables-only", action="store_true", help="rewrite OUT's .md from its .json and stop"
    )
    args = parser.parse_args(argv)
    if args.tables_only:
        with open(args.out) as f:
            _write(json.load(f), args.out)
        return
    names = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown or (args.export and args.export not in names):
        parser.error(f"unknown variant(s) {unknown or args.export}; choose from {list(VARIANTS)}")

    train = load_captions(args.data, "train")
    test = load_captions(args.data, "test")
    if os.path.isfile(os.path.join(args.data, "scenes.jsonl")):
        test.scene_truth = scene_relevance(args.data, test)
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
        "test_captions_per_kind": dict(
            collections.Counter("listing" if c[0].isdigit() else "relation" for c in test.captions)
        ),
        "variants": {},
    }
    if getattr(test, "scene_truth", None) is not None:
        report["scene_chance"] = chance(test.scene_truth)
        report["images_per_relation_caption"] = float(
            test.scene_truth[[not c[0].isdigit() for c in test.captions]].sum(axis=1).mean()
        )
    for name in names:
        print(f"== {name}", flush=True)
        model, result = train_variant(train, test, preprocessor, args.minutes, *VARIANTS[name])
        report["variants"][name] = result
        _write(report, args.out)
        if name == args.export:
            if args.keep_run:
                from simmim_tf.training.runs import save_preset_atomically

                save_preset_atomically(model, args.keep_run)
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
