"""Pictures of what the model looks at (matplotlib, no TensorFlow).

`attention_figure` draws the panels that exist for a prediction: the image,
the question's visual attention over it, and, from the Keras model, the
relational anchor (the part that finds the named object), the semantic
memory's read attention and the image's attention over the words.
`simmim-tf predict --explain` (a .tflite gives the visual attention only) and
notebook 02 (the Keras model gives all three) both draw through it.
"""

import matplotlib

if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
    # Headless by default; a notebook keeps its inline backend.
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _overlay(ax, image, attention_map, title):
    height, width = image.shape[:2]
    ax.imshow(image)
    heat = ax.imshow(
        np.asarray(attention_map, np.float32),
        cmap="inferno",
        alpha=0.6,
        extent=(0, width, height, 0),
        interpolation="bilinear",
    )
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return heat


def attention_figure(
    image,
    attention_map,
    question,
    answer,
    probability=None,
    memory_map=None,
    words=None,
    word_weights=None,
    expected=None,
    anchor_map=None,
):
    """A matplotlib Figure explaining one answer.

    image: uint8 (H, W, 3). attention_map: (rows, cols), the visual attention.
    anchor_map: (rows, cols) or None, where the relational attention's anchor
    looks: the object the question names, from which the relational answer
    is read (it, not the visual attention, is trained to land there).
    memory_map: (rows, cols) or None, the memory's read attention.
    words, word_weights: the question's words and the image's attention over
    them, or None. expected: the right answer, shown when given.
    """
    panels = 2 + (anchor_map is not None) + (memory_map is not None) + (word_weights is not None)
    fig, axes = plt.subplots(1, panels, figsize=(3.2 * panels, 3.6), dpi=120)
    axes[0].imshow(image)
    axes[0].set_title("image", fontsize=9)
    axes[0].set_xticks([])
    axes[0].set_yticks([])
    title = f"answer: {answer}" + (f" ({probability:.0%})" if probability is not None else "")
    if expected is not None:
        title += f"\nexpected: {expected}"
    heat = _overlay(axes[1], image, attention_map, "visual attention\n" + title)
    fig.colorbar(heat, ax=axes[1], fraction=0.046, pad=0.04)
    column = 2
    if anchor_map is not None:
        heat = _overlay(axes[column], image, anchor_map, "relational anchor\n(the object named)")
        fig.colorbar(heat, ax=axes[column], fraction=0.046, pad=0.04)
        column += 1
    if memory_map is not None:
        heat = _overlay(axes[column], image, memory_map, "semantic memory reads")
        fig.colorbar(heat, ax=axes[column], fraction=0.046, pad=0.04)
        column += 1
    if word_weights is not None:
        ax = axes[column]
        weights = np.asarray(word_weights, np.float32)
        ax.barh(np.arange(len(weights)), weights, color="tab:orange")
        ax.set_yticks(np.arange(len(weights)), words or [str(i) for i in range(len(weights))])
        ax.invert_yaxis()
        ax.set_title("image → words", fontsize=9)
        ax.tick_params(labelsize=8)
    fig.suptitle(question, fontsize=10)
    fig.tight_layout()
    return fig


def save_attention_overlay(image, attention_map, question, answer, path, probability=None, **extra):
    """Writes `attention_figure(...)` to `path` (PNG). `extra` goes to it unchanged."""
    fig = attention_figure(image, attention_map, question, answer, probability, **extra)
    fig.savefig(path)
    plt.close(fig)


def memory_strip_figure(frames, reads, slots=3, title=None):
    """A clip as a strip of frames (top row) and, below, where the streaming
    memory's busiest `slots` read in each frame (`SimMIMVideoQA.memory_reads`:
    (frames, slots, rows, cols)), the slots with the most concentrated reads
    first. Returns the figure."""
    reads = np.asarray(reads, np.float32)
    peak = reads.reshape(*reads.shape[:2], -1).max(axis=-1).mean(axis=0)  # (slots,)
    chosen = np.argsort(-peak)[:slots]
    rows, columns = 1 + len(chosen), len(frames)
    fig, axes = plt.subplots(rows, columns, figsize=(1.3 * columns, 1.4 * rows), squeeze=False)
    for t, frame in enumerate(frames):
        axes[0, t].imshow(frame, interpolation="nearest")
        axes[0, t].set_title(f"frame {t}", fontsize=8)
        for row, slot in enumerate(chosen, start=1):
            _overlay(axes[row, t], frame, reads[t, slot], f"slot {slot}" if t == 0 else "")
    for ax in axes.flat:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def reconstruction_figure(masked, reconstruction, original, title=None):
    """Rows of masked input | reconstruction | original (uint8 (n, H, W, 3)
    each), for masked-image pretraining. Returns the matplotlib figure."""
    rows = len(original)
    fig, axes = plt.subplots(rows, 3, figsize=(6, 2 * rows + 0.4), squeeze=False)
    for i in range(rows):
        for ax, image, name in zip(
            axes[i], (masked[i], reconstruction[i], original[i]),
            ("masked input", "reconstruction", "original"), strict=True,
        ):  # fmt: skip
            ax.imshow(image, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def save_search_sheet(results, query, path, columns=5):
    """A contact sheet of search results: each image with its rank and cosine
    similarity, the query as the title (`simmim-tf search --sheet`)."""
    from PIL import Image

    rows = (len(results) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (rank, (image_path, score)) in zip(axes.flat, enumerate(results, 1), strict=False):
        with Image.open(image_path) as image:
            ax.imshow(np.asarray(image.convert("RGB")))
        ax.set_title(f"{rank}. {score:.3f}", fontsize=9)
    figure.suptitle(f"query: {query}", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def save_caption_sheet(images, generated, references, path, columns=3, title=None):
    """Images with their generated caption and reference captions under
    each, wrapped (`benchmarks/captioning.py`)."""
    import textwrap

    rows = (len(images) + columns - 1) // columns
    figure, axes = plt.subplots(
        rows, columns, figsize=(4.0 * columns, 5.6 * rows), squeeze=False, layout="constrained"
    )
    for ax in axes.flat:
        ax.axis("off")
    wrap = textwrap.TextWrapper(width=52)
    for ax, image, caption, refs in zip(axes.flat, images, generated, references, strict=False):
        ax.imshow(np.asarray(image))
        lines = ["generated: " + caption] + ["reference: " + r for r in refs]
        text = "\n".join("\n".join(wrap.wrap(line)) for line in lines)
        ax.text(0, -0.02, text, transform=ax.transAxes, va="top", ha="left", fontsize=7.5)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)
