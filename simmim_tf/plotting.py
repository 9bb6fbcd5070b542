"""Pictures of what the model looks at (matplotlib, no TensorFlow)."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save_attention_overlay(image, attention_map, question, answer, path, probability=None):
    """Writes the image beside the image with its visual-attention heatmap.

    image: uint8 (H, W, 3); attention_map: (rows, cols) over the region grid.
    """
    height, width = image.shape[:2]
    fig, axes = plt.subplots(1, 2, figsize=(6.4, 3.6), dpi=120)
    axes[0].imshow(image)
    axes[0].set_title("image", fontsize=9)
    axes[1].imshow(image)
    heat = axes[1].imshow(
        np.asarray(attention_map, np.float32),
        cmap="inferno",
        alpha=0.6,
        extent=(0, width, height, 0),
        interpolation="bilinear",
    )
    title = f"answer: {answer}" + (f" ({probability:.0%})" if probability is not None else "")
    axes[1].set_title(title, fontsize=9)
    fig.colorbar(heat, ax=axes[1], fraction=0.046, pad=0.04, label="attention")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(question, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
