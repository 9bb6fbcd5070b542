"""Image captioning on CLEVR-2D's captions: SimMIMCaptioner trained for a
wall-clock budget, against a nearest-image baseline and a template prior,
then the device variants.

    python -m benchmarks.captioning --data benchmarks/data/clevr2d --minutes 15

The captioner (the tiny preset's image encoder, a two-block caption decoder)
trains on the training split (every image once per epoch with one of its
two captions drawn anew) for `--minutes` of training time, with AdamW, a
linear warm-up and a cosine decay over the time budget. It is scored on the
test split (500 images, each with its two captions as references) at a
quarter, half, three quarters and all of the budget: BLEU-4 and CIDEr-D of
its greedy captions (pycocoevalcap's scorers, `simmim_tf.caption_metrics`),
and at the end of beam search with 3 beams as well.

Baselines, on the same references:
    nearest image   the caption of the training image nearest in raw pixels
                    (16×16 thumbnails, L2), its listing or its relation caption
    template prior  one caption for every image: the commonest training
                    caption template, each slot filled with its commonest word

Then the trained model is exported (float32, float16, dynamic, int8) and
`simmim_tf.export.captioner_report` scores each variant's greedy captions on
the edge runtime, their agreement with Keras's, and milliseconds per word
and per caption on 1 and 2 threads. `--export-from RUN` does only that, for
a model saved by `--keep-run`.

Writes a JSON and a markdown table (benchmarks/results/captioning_clevr2d.*)
and a figure of test images with their generated and reference captions.
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
from simmim_tf.caption_metrics import caption_scores
from simmim_tf.data.caption_dataset import load_captions
from simmim_tf.models import SimMIMCaptioner, SimMIMCaptionerPreprocessor
from simmim_tf.preprocessing.image_conversion import convert_image
from simmim_tf.preprocessing.question_tokenizer import split_words
from simmim_tf.training.caption_trainer import caption_pairs, teacher_forcing

RECIPE = {"learning_rate": 1e-3, "weight_decay": 0.05, "batch_size": 64, "warmup_steps": 200}
MAX_SEQUENCE_LENGTH = 48  # CLEVR-2D's longest caption has 46 words, then [END]
THUMBNAIL = 16


def references_of(caption_set):
    """Every image's captions, in image order."""
    return [[caption_set.captions[j] for j in rows] for rows in caption_set.captions_per_image()]


def nearest_image_captions(train, test):
    """{kind: captions}: for each test image, the listing and the relation
    caption of the training image nearest in raw pixels."""

    def thumbnails(images):
        return np.stack([convert_image(i, THUMBNAIL) for i in images]).reshape(len(images), -1)

    train_t, test_t = thumbnails(train.images).astype(np.float32), thumbnails(test.images)
    nearest = []
    for start in range(0, len(test_t), 100):
        chunk = test_t[start : start + 100].astype(np.float32)
        distances = (chunk**2).sum(1)[:, None] - 2 * chunk @ train_t.T + (train_t**2).sum(1)
        nearest += list(np.argmin(distances, axis=1))
    per_image = references_of(train)
    out = {}
    for kind in ("listing", "relation"):
        pick = [[c for c in per_image[i] if c[0].isdigit() == (kind == "listing")] for i in nearest]
        out[kind] = [p[0] if p else per_image[i][0] for p, i in zip(pick, nearest, strict=True)]
    return out


def template_prior(captions):
    """The commonest template (attribute words and numbers as slots), each
    slot filled with its commonest word in the captions of that template."""
    from simmim_tf.data.clevr2d import COLORS, SHAPES, SIZES

    slots = set(COLORS) | set(SHAPES) | set(SIZES)
    words = [split_words(c) for c in captions]

    def template(ws):
        return tuple("_" if (w in slots or w.isdigit()) else w for w in ws)

    common = collections.Counter(template(ws) for ws in words).most_common(1)[0][0]
    fits = [ws for ws in words if template(ws) == common]
    return " ".join(
        collections.Counter(ws[i] for ws in fits).most_common(1)[0][0] if t == "_" else t
        for i, t in enumerate(common)
    )


def train_captioner(train, test, preprocessor, minutes, overrides=None, seed=0):
    keras.utils.set_random_seed(seed)
    model = SimMIMCaptioner.from_preset("tiny", preprocessor=preprocessor, **(overrides or {}))
    model.compile(
        keras.optimizers.AdamW(
            RECIPE["learning_rate"], weight_decay=RECIPE["weight_decay"], clipnorm=1.0
        )
    )
    ids, mask = (np.asarray(t) for t in preprocessor.packed_token_ids(train.captions))
    dataset = caption_pairs(train, ids, mask, RECIPE["batch_size"], seed).map(teacher_forcing)
    references = references_of(test)

    def evaluate():
        return caption_scores(references, model.generate(test.images))

    def describe(r):
        return f"BLEU-4 {r['bleu4']:.1f}, CIDEr-D {r['cider_d']:.1f}"

    budget = BudgetedEvaluation(60 * minutes, evaluate, key="scores", describe=describe)
    schedule = TimeCosineSchedule(budget, RECIPE["learning_rate"], RECIPE["warmup_steps"])
    # The preprocessor stays attached (evaluation generates from raw images);
    # it passes the pipeline's token ids through.
    model.fit(dataset, epochs=100_000, callbacks=[budget, schedule], verbose=0, shuffle=False)
    return model, {
        "parameters": model.count_params(),
        "steps": budget.steps,
        "captions_per_s": budget.steps * RECIPE["batch_size"] / max(budget.trained_s, 1e-9),
        "curve": budget.curve,
        "greedy": budget.curve[-1]["scores"],
        "overrides": overrides or {},
    }


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True, help="data folder with captions.jsonl")
    parser.add_argument("--minutes", type=float, default=15.0, help="training time")
    parser.add_argument("--no-export", action="store_true", help="skip the device variants")
    parser.add_argument("--keep-run", default="", help="save the trained preset here")
    parser.add_argument("--out", default="benchmarks/results/captioning_clevr2d.json")
    parser.add_argument("--figure", default="docs/captions_clevr2d.png")
    parser.add_argument(
        "--tables-only", action="store_true", help="rewrite OUT's .md from its .json and stop"
    )
    parser.add_argument(
        "--export-from",
        default="",
        help="a preset saved by --keep-run: export and report it into OUT's .json, no training",
    )
    args = parser.parse_args(argv)
    if args.tables_only or args.export_from:
        with open(args.out) as f:
            report = json.load(f)
        if args.export_from:
            model = SimMIMCaptioner.from_preset(args.export_from)
            report["export"] = export_and_report(model, args.data)
            report["export"]["command"] = "python " + " ".join(sys.argv)
            report["export"]["date"] = datetime.datetime.now().isoformat(timespec="minutes")
        _write(report, args.out)
        return
    train = load_captions(args.data, "train")
    test = load_captions(args.data, "test")
    references = references_of(test)
    preprocessor = SimMIMCaptionerPreprocessor.from_data(
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
        "baselines": {},
    }
    nearest = nearest_image_captions(train, test)
    for kind, captions in nearest.items():
        report["baselines"][f"nearest image, {kind} caption"] = caption_scores(references, captions)
    prior = template_prior(train.captions)
    report["template_prior_caption"] = prior
    report["baselines"]["template prior"] = caption_scores(references, [prior] * len(references))
    print(table(report), flush=True)
    model, report["captioner"] = train_captioner(train, test, preprocessor, args.minutes)
    beams = model.generate(test.images, num_beams=3)
    report["captioner"]["beam_3"] = caption_scores(references, beams)
    greedy = model.generate(test.images)
    report["examples"] = [
        {"image": test.image_paths[i], "greedy": greedy[i], "beam_3": beams[i],
         "references": references[i]}
        for i in range(6)
    ]  # fmt: skip
    _write(report, args.out)
    from simmim_tf.plotting import save_caption_sheet

    save_caption_sheet(
        test.images[:6],
        greedy[:6],
        references[:6],
        args.figure,
        title=f"CLEVR-2D test images: SimMIMCaptioner (tiny, {args.minutes:g} min), greedy",
    )
    if args.keep_run:
        from simmim_tf.training.runs import save_preset_atomically

        save_preset_atomically(model, args.keep_run)
    if not args.no_export:
        report["export"] = export_and_report(model, args.data)
        _write(report, args.out)
    print(table(report))


def export_and_report(model, data_dir):
    from simmim_tf.export.captioner_export import export_captioner
    from simmim_tf.export.captioner_report import captioner_report
    from simmim_tf.training.runs import save_preset_atomically

    variants = ("float32", "float16", "dynamic", "int8")
    with tempfile.TemporaryDirectory() as scratch:
        run, export = os.path.join(scratch, "run"), os.path.join(scratch, "export")
        save_preset_atomically(model, run)
        export_captioner(run, export, data_dir, variants, formats=("tflite",))
        report = captioner_report(export, run, data_dir, variants)
        with open(os.path.join(export, "captioner_report.md")) as f:
            report["table"] = f.read()
    print(report["table"])
    return report


def table(report):
    lines = [
        f"Captioning, {report['data']}: {report['minutes']:g} min of training; "
        f"{report['test']['images']} test images, {report['test']['captions']} reference "
        f"captions; {report['date']}, {report['machine']}.",
        "",
        "| model | BLEU-4 | CIDEr-D |",
        "|---|---|---|",
    ]
    for name, r in report["baselines"].items():
        lines.append(f"| {name} | {r['bleu4']:.1f} | {r['cider_d']:.1f} |")
    if "captioner" in report:
        c = report["captioner"]
        for point in c["curve"]:
            s = point["scores"]
            lines.append(
                f"| SimMIMCaptioner, greedy, {point['train_s'] / 60:.1f} min "
                f"({point['steps']} steps) | {s['bleu4']:.1f} | {s['cider_d']:.1f} |"
            )
        if "beam_3" in c:
            b = c["beam_3"]
            lines.append(
                f"| SimMIMCaptioner, beam search (3), end | {b['bleu4']:.1f} | {b['cider_d']:.1f} |"
            )
        lines.append(
            f"\n{c['parameters']:,} parameters, {c['captions_per_s']:.0f} training captions/s."
        )
    return "\n".join(lines) + "\n"


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
