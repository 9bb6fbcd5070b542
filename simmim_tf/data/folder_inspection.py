"""`simmim-tf data inspect`: what a data folder holds, as tables and pictures.

`summary` counts questions per split and family and the answers of each
family; `contact_sheet` draws a grid of images, each with questions and
answers under it; `answer_histogram` draws the answers of each family as bars.
"""

import collections
import os
import textwrap

import numpy as np

from simmim_tf.data.vqa_dataset import read_questions
from simmim_tf.preprocessing.image_loading import load_image


def summary(data_dir, records=None):
    """{"questions": {split: {family: n}}, "answers": {family: Counter}, "images": n}."""
    records = records if records is not None else read_questions(data_dir)
    questions = collections.defaultdict(collections.Counter)
    answers = collections.defaultdict(collections.Counter)
    for r in records:
        questions[r["split"]][r["family"]] += 1
        answers[r["family"]][r["answer"]] += 1
    return {
        "questions": {s: dict(sorted(c.items())) for s, c in sorted(questions.items())},
        "answers": dict(sorted(answers.items())),
        "images": len({r["image"] for r in records}),
    }


def format_summary(data_dir, result, top=8):
    lines = [f"{data_dir}: {result['images']} images"]
    for split, families in result["questions"].items():
        total = sum(families.values())
        parts = ", ".join(f"{f} {n}" for f, n in families.items())
        lines.append(f"  {split}: {total} questions ({parts})")
    lines.append("answers per family (most common first):")
    for family, counts in result["answers"].items():
        total = sum(counts.values())
        shown = ", ".join(f"{a} {n / total:.0%}" for a, n in counts.most_common(top))
        more = f", ... ({len(counts) - top} more)" if len(counts) > top else ""
        lines.append(f"  {family:<16} {shown}{more}")
    return "\n".join(lines)


def contact_sheet(data_dir, path, records=None, num_images=12, per_image=3, seed=0):
    """A grid of `num_images` random images, each with `per_image` questions and answers."""
    import matplotlib.pyplot as plt

    from simmim_tf import plotting  # noqa: F401  (selects a headless backend)

    records = records if records is not None else read_questions(data_dir)
    by_image = collections.defaultdict(list)
    for r in records:
        by_image[r["image"]].append(r)
    rng = np.random.default_rng(seed)
    images = sorted(by_image)
    chosen = [
        images[i]
        for i in sorted(rng.choice(len(images), min(num_images, len(images)), replace=False))
    ]
    cols = min(4, len(chosen))
    rows = -(-len(chosen) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 5.0 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image in zip(axes.flat, chosen, strict=False):
        ax.imshow(load_image(os.path.join(data_dir, image)), interpolation="nearest")
        ax.set_title(os.path.basename(image), fontsize=8)
        picked = [by_image[image][i] for i in rng.permutation(len(by_image[image]))[:per_image]]
        text = "\n".join(
            textwrap.fill(f"{q['question']} → {q['answer']}", 44, subsequent_indent="   ")
            for q in picked
        )
        ax.text(0, -0.03, text, transform=ax.transAxes, va="top", fontsize=7)
    fig.suptitle(
        f"{os.path.basename(os.path.normpath(data_dir))}: {len(images)} images", fontsize=11
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def answer_histogram(result, path, top=12):
    """One bar chart per family of its `top` most common answers (share of the family)."""
    import matplotlib.pyplot as plt

    from simmim_tf import plotting  # noqa: F401

    families = list(result["answers"])
    fig, axes = plt.subplots(1, len(families), figsize=(3.2 * len(families), 3), squeeze=False)
    for ax, family in zip(axes[0], families, strict=True):
        counts = result["answers"][family]
        total = sum(counts.values())
        names, values = zip(*counts.most_common(top), strict=True)
        ax.barh(range(len(names))[::-1], [v / total for v in values], color="#4c72b0")
        ax.set_yticks(range(len(names))[::-1], names, fontsize=7)
        ax.set_title(f"{family} ({total})", fontsize=9)
        ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda x, _: f"{x:.0%}"))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
