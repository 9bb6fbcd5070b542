"""What each exported captioning variant gives against the Keras model:
size, BLEU-4 and CIDEr-D, agreement with Keras's greedy captions, and
latency per word and per caption on the edge runtime (`simmim-tf export
--report` of a captioning run, and `benchmarks/captioning.py`)."""

import json
import os

import numpy as np

from simmim_tf.atomic_files import write_atomically
from simmim_tf.caption_metrics import caption_scores
from simmim_tf.data.caption_dataset import load_captions
from simmim_tf.edge.edge_captioner import PARTS, EdgeCaptioner, part_file
from simmim_tf.models.simmim_captioner import SimMIMCaptioner


def captioner_report(export_dir, run_dir, data_dir, variants, split="test", threads=(1, 2)):
    """Per variant, on `split`'s images: file sizes, BLEU-4 and CIDEr-D of
    its greedy captions, the share of images whose caption is exactly
    Keras's, and on `threads` CPU threads the median milliseconds of the
    encoder, of one decoder step (one word) and of a whole caption. Writes
    OUT/captioner_report.json and .md; returns the dict."""
    model = SimMIMCaptioner.from_preset(run_dir)
    data = load_captions(data_dir, split, image_size=model.backbone.image_size)
    references = [[data.captions[j] for j in rows] for rows in data.captions_per_image()]
    keras_captions = model.generate(data.images)
    report = {
        "split": split,
        "images": len(data.images),
        "keras": caption_scores(references, keras_captions),
        "variants": {},
    }
    for variant in variants:
        entry = {
            "bytes": {
                p: os.path.getsize(os.path.join(export_dir, part_file(variant, p))) for p in PARTS
            },
            "ms": {},
        }
        for n in threads:
            captioner = EdgeCaptioner(export_dir, variant, num_threads=n)
            captions, encoder_ms, step_ms, caption_ms = [], [], [], []
            for image in data.images:
                captions.append(captioner.caption(image))
                timing = captioner.last_timing
                encoder_ms.append(timing["encoder_ms"])
                step_ms += timing["step_ms"]
                caption_ms.append(timing["encoder_ms"] + sum(timing["step_ms"]))
            entry["ms"][f"{n}_thread"] = {
                "encoder": float(np.median(encoder_ms)),
                "word": float(np.median(step_ms)),
                "caption": float(np.median(caption_ms)),
            }
            if n == threads[0]:
                entry.update(caption_scores(references, captions))
                entry["same_as_keras"] = float(
                    100.0 * np.mean([a == b for a, b in zip(captions, keras_captions, strict=True)])
                )
                entry["examples"] = captions[:3]
        report["variants"][variant] = entry
    report["keras"]["examples"] = keras_captions[:3]
    write_atomically(
        os.path.join(export_dir, "captioner_report.json"), json.dumps(report, indent=2)
    )
    write_atomically(os.path.join(export_dir, "captioner_report.md"), format_report(report))
    return report


def format_report(report):
    """A markdown table: one row for Keras, one per variant."""
    threads = sorted(
        {key.split("_")[0] for v in report["variants"].values() for key in v["ms"]}, key=int
    )
    header = ["model", "MB (encoder + decoder)", "BLEU-4", "CIDEr-D", "same caption as Keras"]
    header += [f"ms encoder / word / caption, {n} thread(s)" for n in threads]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    keras = report["keras"]
    lines.append(
        f"| Keras (greedy) | | {keras['bleu4']:.1f} | {keras['cider_d']:.1f} | |"
        + " |" * len(threads)
    )
    for variant, v in report["variants"].items():
        size = sum(v["bytes"].values()) / 1e6
        cells = [
            variant,
            f"{size:.3f}",
            f"{v['bleu4']:.1f}",
            f"{v['cider_d']:.1f}",
            f"{v['same_as_keras']:.1f}%",
        ]
        for n in threads:
            ms = v["ms"][f"{n}_thread"]
            cells.append(f"{ms['encoder']:.2f} / {ms['word']:.3f} / {ms['caption']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
