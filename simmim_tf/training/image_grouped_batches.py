"""Batches that hold several questions per image, for `SimMIMVQATraining`.

Each epoch, every image's questions are shuffled and cut into groups of
`questions_per_image`; the groups of all images are shuffled and packed,
`batch_size // questions_per_image` groups to a batch. A batch then holds
about batch_size / questions_per_image distinct images, each encoded once.
Every question is used exactly once per epoch.
"""

import numpy as np
import tensorflow as tf


def _questions_per_image(question_set):
    per_image = [[] for _ in range(len(question_set.images))]
    for q, i in enumerate(question_set.image_index):
        per_image[i].append(q)
    return per_image


def steps_per_epoch(question_set, batch_size, questions_per_image):
    """Batches per epoch of `image_grouped_batches` with these arguments."""
    groups = sum(-(-len(q) // questions_per_image) for q in _questions_per_image(question_set))
    return -(-groups // max(1, batch_size // questions_per_image))


def image_grouped_batches(
    question_set,
    token_ids,
    answer_ids,
    batch_size,
    questions_per_image=4,
    region_targets=None,
    seed=0,
    anchor_targets=None,
):
    """A tf.data.Dataset of (inputs, targets) for `SimMIMVQATraining.fit`.

    Args:
        question_set: `QuestionSet` (images decoded in memory).
        token_ids: int32 (questions, tokens). answer_ids: int32 (questions,).
        batch_size: int. Questions per batch.
        questions_per_image: int. Questions of one image kept together; 1
            gives a batch of (nearly) batch_size different images.
        region_targets: float32 (images, regions, attributes + 2) or None
            (`simmim_tf.data.region_targets`).
        seed: int. Shuffling seed (epoch e uses seed + e).
        anchor_targets: uint8 (questions, [anchors,] regions) or None
            (`simmim_tf.data.anchor_targets`).

    Yields ({"images", "image_index", "token_ids", "padding_mask"},
    {"answers"[, "grounding"][, "anchor"]}); `image_index` points into the
    batch's images.
    """
    if min(batch_size, questions_per_image) < 1:
        sizes = f"batch_size ({batch_size}) and questions_per_image ({questions_per_image})"
        raise ValueError(f"{sizes} must be at least 1")
    per_image = _questions_per_image(question_set)
    groups_per_batch = max(1, batch_size // questions_per_image)
    epoch = [0]

    def batches():
        rng = np.random.default_rng(seed + epoch[0])
        epoch[0] += 1
        for questions in _shuffled_groups(per_image, questions_per_image, groups_per_batch, rng):
            images, local = np.unique(question_set.image_index[questions], return_inverse=True)
            inputs = {
                "images": question_set.images[images],
                "image_index": local.astype(np.int32),
                "token_ids": token_ids[questions],
                "padding_mask": (token_ids[questions] != 0).astype(np.int32),
            }
            targets = {"answers": answer_ids[questions]}
            if region_targets is not None:
                targets["grounding"] = region_targets[images]
            if anchor_targets is not None:
                targets["anchor"] = anchor_targets[questions].astype(np.float32)
            yield inputs, targets

    signature = _signature(question_set, token_ids, region_targets, anchor_targets)
    # A known length: Keras then shows progress against it, and (Keras 3.15,
    # TensorFlow) does not count an extra optimizer step at the end of each
    # epoch as it does for a generator of unknown length.
    steps = steps_per_epoch(question_set, batch_size, questions_per_image)
    dataset = tf.data.Dataset.from_generator(batches, output_signature=signature)
    return dataset.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(2)


def _shuffled_groups(per_image, questions_per_image, groups_per_batch, rng):
    """Yields each batch's question indices: every image's questions
    shuffled and cut into groups of `questions_per_image`, the groups
    shuffled, `groups_per_batch` of them per batch."""
    groups = []
    for questions in per_image:
        questions = rng.permutation(questions)
        groups += [
            questions[k : k + questions_per_image]
            for k in range(0, len(questions), questions_per_image)
        ]
    order = rng.permutation(len(groups))
    for start in range(0, len(order), groups_per_batch):
        yield np.concatenate([groups[g] for g in order[start : start + groups_per_batch]])


def _signature(question_set, token_ids, region_targets, anchor_targets):
    """The (inputs, targets) structure `image_grouped_batches` yields."""
    size = question_set.images.shape[1:]
    tokens = token_ids.shape[1]
    signature = (
        {
            "images": tf.TensorSpec((None, *size), tf.uint8),
            "image_index": tf.TensorSpec((None,), tf.int32),
            "token_ids": tf.TensorSpec((None, tokens), tf.int32),
            "padding_mask": tf.TensorSpec((None, tokens), tf.int32),
        },
        {"answers": tf.TensorSpec((None,), tf.int32)},
    )
    if region_targets is not None:
        signature[1]["grounding"] = tf.TensorSpec((None, *region_targets.shape[1:]), tf.float32)
    if anchor_targets is not None:
        signature[1]["anchor"] = tf.TensorSpec((None, *anchor_targets.shape[1:]), tf.float32)
    return signature
