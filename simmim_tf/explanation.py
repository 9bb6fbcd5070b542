"""From attention tensors to maps a person can look at (NumPy only).

The model returns attention per head and per query; a picture needs one map.
These functions do that reduction the same way for the Keras model
(`explain`) and for the on-device runtime (`simmim_tf.edge`), so that the
notebooks and `simmim-tf predict --explain` show the same thing.
"""

import dataclasses

import numpy as np


def top_answers(probabilities, answers, k):
    """The k most probable (answer, probability) pairs, best first.

    Stable: of answers with equal probabilities (int8 outputs often tie),
    the first wins, as with argmax everywhere else.
    """
    order = np.argsort(-np.asarray(probabilities), kind="stable")[:k]
    return [(answers[i], float(probabilities[i])) for i in order]


def _normalise(weights):
    return weights / max(float(weights.sum()), 1e-9)


def visual_map(visual_attention, mask, grid_shape):
    """Where the question looks in the image.

    visual_attention: (heads, tokens, regions); mask: (tokens,) bool, True on
    real words. Mean over heads and real words → (rows, cols), sums to 1.
    """
    weights = np.asarray(visual_attention, np.float32)[:, np.asarray(mask, bool)]
    return _normalise(weights.mean(axis=(0, 1))).reshape(grid_shape)


def memory_map(memory_attention, num_regions, grid_shape):
    """Where the semantic memory reads the image, and how much it reads it.

    memory_attention: (heads, slots, regions + tokens), the last memory
    layer's read weights. Returns ((rows, cols) map summing to 1, the share
    of the read weight that went to regions rather than to words).
    """
    weights = np.asarray(memory_attention, np.float32).mean(axis=(0, 1))  # (regions + tokens,)
    on_image = weights[:num_regions]
    share = float(on_image.sum() / max(float(weights.sum()), 1e-9))
    return _normalise(on_image).reshape(grid_shape), share


def word_weights(textual_attention, mask):
    """How much the image attends to each real word of the question.

    textual_attention: (heads, regions, tokens). Mean over heads and regions,
    restricted to real words → (words,), sums to 1.
    """
    weights = np.asarray(textual_attention, np.float32).mean(axis=(0, 1))
    return _normalise(weights[np.asarray(mask, bool)])


@dataclasses.dataclass
class Explanation:
    answer: str
    probability: float
    top_k: list  # [(answer, probability), ...], best first
    words: list  # the question's words the model saw
    visual_map: np.ndarray  # (rows, cols): the question's attention over regions
    memory_map: np.ndarray  # (rows, cols): the memory's read attention over regions
    memory_image_share: float  # share of the memory's read weight on the image
    word_weights: np.ndarray  # (words,): the image's attention over the words
    # (rows, cols): where the relational attention's anchor looks (the object
    # it takes the question to name); None for a model without one.
    anchor_map: np.ndarray | None = None


def explain(model, image, question, top_k=3):
    """Answers one question with a Keras `SimMIMVQA` and explains the answer.

    model: SimMIMVQA with its preprocessor; image: uint8 (S, S, 3).
    Returns an `Explanation`.
    """

    tokenizer = model.preprocessor.question_tokenizer()
    ids, mask = tokenizer.encode(question)
    out = model.backbone.features(np.asarray(image, np.float32)[None], ids[None], mask[None])
    logits = np.asarray(model.answer_head(out["pooled"]), np.float32)[0]
    probabilities = np.exp(logits - logits.max())
    probabilities /= probabilities.sum()
    best = top_answers(probabilities, model.preprocessor.answers, top_k)
    grid = model.backbone.grid_shape
    memory, share = memory_map(out["memory_attention"][0], grid[0] * grid[1], grid)
    return Explanation(
        answer=best[0][0],
        probability=best[0][1],
        top_k=best,
        words=tokenizer.words(question),
        visual_map=visual_map(out["visual_attention"][0], mask, grid),
        memory_map=memory,
        memory_image_share=share,
        word_weights=word_weights(out["textual_attention"][0], mask),
        anchor_map=first_anchor_map(out.get("anchor_attention", [None])[0], grid),
    )


def first_anchor_map(anchor_attention, grid):
    """One question's first anchor (the object named first), (regions,) or
    (anchors, regions), as (rows, cols); None for a model without
    relational attention."""
    if anchor_attention is None:
        return None
    return np.asarray(anchor_attention, np.float32).reshape(-1, *grid)[0]


def attention_in_box(attention_map, image_size, patch_size, box):
    """Share of an attention map's weight that falls inside a pixel box.

    attention_map: (rows, cols) over the region grid, region (r, c) covering
    pixels [r * patch_size, (r + 1) * patch_size) of the image; image_size:
    pixels per side; box: (x0, y0, x1, y1) in pixels, x1 and y1 exclusive.
    Each region's weight is spread evenly over its pixels inside the image.
    """
    weights = np.asarray(attention_map, np.float64)
    rows, cols = weights.shape
    row_of = np.minimum(np.arange(image_size) // patch_size, rows - 1)
    col_of = np.minimum(np.arange(image_size) // patch_size, cols - 1)
    pixels = np.outer(np.bincount(row_of, minlength=rows), np.bincount(col_of, minlength=cols))
    density = (weights / np.maximum(pixels, 1))[row_of][:, col_of]  # (image_size, image_size)
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    inside = density[max(y0, 0) : min(y1, image_size), max(x0, 0) : min(x1, image_size)].sum()
    return float(inside / max(density.sum(), 1e-12))


def named_object_box(question, objects, vocabulary=None):
    """The pixel box (x0, y0, x1, y1) of the object the question names first
    (by the rule the anchor is trained with: `anchor_targets.named_object`),
    or None. objects: a scene's list from scenes.jsonl; vocabulary: the data
    set's `attribute_vocabulary`."""
    from simmim_tf.data.anchor_targets import named_object
    from simmim_tf.data.scene_objects import object_box

    o = named_object(question, objects, vocabulary=vocabulary)
    if o is None:
        return None
    return object_box(o)


def attention_on_named_objects(model, question_set, scenes, every=10, batch_size=100):
    """How much of the visual attention falls on the object a question names.

    For every `every`-th question of a `QuestionSet` that names one object
    (`named_object_box`), the share of `explain`'s visual map inside that object's box
    (`attention_in_box`). Returns {"share", "uniform_share", "questions"}:
    the mean share, and the mean share uniform attention would give; for a
    model with relational attention also "anchor_share", the same for its
    anchor. The questions go through the model `batch_size` at a time.
    """
    from simmim_tf.data.anchor_targets import attribute_vocabulary

    size, patch = model.backbone.image_size, model.backbone.patch_size
    grid = model.backbone.grid_shape
    tokenizer = model.preprocessor.question_tokenizer()
    vocabulary = attribute_vocabulary(scenes.values())
    named = []  # (question index, box)
    for i in range(0, len(question_set), every):
        path = question_set.image_paths[question_set.image_index[i]]
        box = named_object_box(question_set.questions[i], scenes[path], vocabulary)
        if box is not None:
            named.append((i, box))
    shares, uniform, anchor = [], [], []
    for start in range(0, len(named), batch_size):
        chunk = named[start : start + batch_size]
        encoded = [tokenizer.encode(question_set.questions[i]) for i, _ in chunk]
        ids, masks = (np.stack(x) for x in zip(*encoded, strict=True))
        images = [question_set.images[question_set.image_index[i]] for i, _ in chunk]
        out = model.backbone.features(np.asarray(images, np.float32), ids, masks)
        attention = np.asarray(out["visual_attention"])
        anchors = out.get("anchor_attention")
        anchors = None if anchors is None else np.asarray(anchors)
        for j, (_, box) in enumerate(chunk):
            visual = visual_map(attention[j], masks[j], grid)
            shares.append(attention_in_box(visual, size, patch, box))
            uniform.append(attention_in_box(np.ones_like(visual), size, patch, box))
            anchor_map = first_anchor_map(None if anchors is None else anchors[j], grid)
            if anchor_map is not None:
                anchor.append(attention_in_box(anchor_map, size, patch, box))
    extra = {"anchor_share": float(np.mean(anchor))} if anchor else {}
    return {
        **extra,
        "share": float(np.mean(shares)) if shares else float("nan"),
        "uniform_share": float(np.mean(uniform)) if uniform else float("nan"),
        "questions": len(shares),
    }
