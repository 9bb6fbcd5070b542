"""Recall@K of image–text retrieval, both directions, in NumPy (Keras
evaluation, the TFLite report and the benchmark share it)."""

import numpy as np

RECALL_AT = (1, 5, 10)


def recall_at_k(image_embeddings, text_embeddings, relevance, ks=RECALL_AT):
    """Recall@K in %, as the COCO retrieval protocol counts it.

    image→text: an image is found at K if one of the captions that describe
    it is among its K nearest captions; text→image: a caption is found at K
    if an image it describes is among its K nearest images. `relevance`:
    bool (texts, images). Also `rsum`, the sum of the six recalls.
    """
    for name, e in (("image", image_embeddings), ("text", text_embeddings)):
        if not np.all(np.isfinite(e)):
            raise ValueError(f"{name} embeddings hold NaN or infinite values")
    scores = np.asarray(text_embeddings) @ np.asarray(image_embeddings).T  # (texts, images)
    result = {}
    for name, s, rel in (
        ("image_to_text", scores.T, relevance.T),
        ("text_to_image", scores, relevance),
    ):
        # Rank of the best relevant item: the items scoring above it, and
        # the irrelevant ones tied with it (a tie is not a hit, so a model
        # whose scores are all equal finds nothing).
        best = np.where(rel, s, -np.inf).max(axis=1, keepdims=True)
        rank = (s > best).sum(axis=1) + ((s == best) & ~rel).sum(axis=1)
        for k in ks:
            result[f"{name}_r{k}"] = float(100.0 * np.mean(rank < k))
    result["rsum"] = float(
        sum(result[f"{d}_r{k}"] for d in ("image_to_text", "text_to_image") for k in ks)
    )
    return result


def format_recall(result, title):
    """A small table: rows the directions, columns Recall@1/5/10, then RSUM."""
    lines = [title, f"{'':<15}" + "".join(f"{'R@' + str(k):>8}" for k in RECALL_AT)]
    for direction in ("image_to_text", "text_to_image"):
        label = direction.replace("_to_", " → ")
        lines.append(
            f"{label:<15}" + "".join(f"{result[f'{direction}_r{k}']:>8.1f}" for k in RECALL_AT)
        )
    lines.append(f"{'RSUM':<15}{result['rsum']:>8.1f}")
    return "\n".join(lines)
