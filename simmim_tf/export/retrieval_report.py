"""What each exported retrieval variant gives against the Keras model:
size, Recall@K, agreement and latency (`simmim-tf export --report` of a
retrieval run, and `benchmarks/retrieval.py`)."""

import json
import os
import time

import numpy as np

from simmim_tf.atomic_files import write_atomically
from simmim_tf.data.caption_dataset import load_captions
from simmim_tf.edge.edge_retriever import EdgeRetriever, tower_file
from simmim_tf.models.simmim_retriever import SimMIMRetriever
from simmim_tf.retrieval_recall import RECALL_AT, recall_at_k

LATENCY_REPEATS = 50


def retrieval_report(export_dir, run_dir, data_dir, variants, split="test", threads=(1, 2)):
    """Per variant: tower sizes, Recall@K on `split`, the mean cosine between
    its embeddings and Keras's, how often its nearest image for each caption
    is Keras's, and milliseconds per image and per query (median). Writes
    OUT/retrieval_report.json and .md; returns the dict."""
    model = SimMIMRetriever.from_preset(run_dir)
    captions = load_captions(data_dir, split, image_size=model.backbone.image_size)
    relevance = captions.relevance()
    keras_images = model.embed_images(captions.images)
    keras_texts = model.embed_texts(captions.captions)
    keras_nearest = np.argmax(keras_texts @ keras_images.T, axis=1)
    report = {
        "split": split,
        "images": len(captions.images),
        "captions": len(captions),
        "keras": recall_at_k(keras_images, keras_texts, relevance),
        "variants": {},
    }
    for variant in variants:
        retriever = EdgeRetriever(export_dir, variant, num_threads=1)
        images = retriever.embed_images(captions.images)
        texts = np.stack([retriever.embed_text(c) for c in captions.captions])
        entry = {
            "bytes": {
                t: os.path.getsize(os.path.join(export_dir, tower_file(variant, t)))
                for t in ("image", "text")
            },
            "recall": recall_at_k(images, texts, relevance),
            "cosine_to_keras": {
                "image": float(np.mean(np.sum(images * keras_images, axis=1))),
                "text": float(np.mean(np.sum(texts * keras_texts, axis=1))),
            },
            "nearest_image_agreement": float(
                100.0 * np.mean(np.argmax(texts @ images.T, axis=1) == keras_nearest)
            ),
            "ms": {},
        }
        for n in threads:
            timed = EdgeRetriever(export_dir, variant, num_threads=n)
            entry["ms"][f"image_{n}_thread"] = _median_ms(timed.embed_image, captions.images[0])
            entry["ms"][f"text_{n}_thread"] = _median_ms(timed.embed_text, captions.captions[0])
        report["variants"][variant] = entry
    write_atomically(
        os.path.join(export_dir, "retrieval_report.json"), json.dumps(report, indent=2)
    )
    write_atomically(os.path.join(export_dir, "retrieval_report.md"), format_report(report))
    return report


def _median_ms(function, argument):
    function(argument)  # warm-up
    times = []
    for _ in range(LATENCY_REPEATS):
        start = time.perf_counter()
        function(argument)
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times))


def format_report(report):
    """A markdown table: one row for Keras, one per variant."""
    threads = sorted(
        {key.split("_")[1] for v in report["variants"].values() for key in v["ms"]}, key=int
    )
    recalls = [f"{d} R@{k}" for d in ("i→t", "t→i") for k in RECALL_AT]
    header = [
        "model",
        "MB (image + text)",
        *recalls,
        "RSUM",
        "cosine to Keras (image / text)",
        "same nearest image",
    ]
    header += [f"ms image / query, {n} thread(s)" for n in threads]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]

    def recall_cells(r):
        return [
            f"{r[f'{d}_r{k}']:.1f}" for d in ("image_to_text", "text_to_image") for k in RECALL_AT
        ]

    lines.append(
        "| Keras | | "
        + " | ".join(recall_cells(report["keras"]))
        + f" | {report['keras']['rsum']:.1f} | | |"
        + " |" * len(threads)
    )
    for variant, v in report["variants"].items():
        size = (v["bytes"]["image"] + v["bytes"]["text"]) / 1e6
        cells = [
            variant,
            f"{size:.3f}",
            *recall_cells(v["recall"]),
            f"{v['recall']['rsum']:.1f}",
            f"{v['cosine_to_keras']['image']:.4f} / {v['cosine_to_keras']['text']:.4f}",
            f"{v['nearest_image_agreement']:.1f}%",
        ]
        cells += [
            f"{v['ms'][f'image_{n}_thread']:.2f} / {v['ms'][f'text_{n}_thread']:.2f}"
            for n in threads
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
