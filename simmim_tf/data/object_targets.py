"""The object targets of a training run, for every input pipeline: per
image, its regions' attributes and centre offsets (the grounding loss,
`simmim_tf.data.region_targets`); per question, the regions of the
object(s) it names (the anchor loss, `simmim_tf.data.anchor_targets`).

They are keyed by the image's path and by (path, question), so that any
pipeline can attach them to each example it yields, whatever order it reads
the data in: the memory pipeline, the streaming one and TFRecord shards
alike. Each example then carries its own targets, and a batch can be split
between replicas anywhere (`simmim_tf.training.input_pipeline`).
"""

import dataclasses

import numpy as np

from simmim_tf.data.anchor_targets import anchor_targets
from simmim_tf.data.region_targets import region_targets


@dataclasses.dataclass
class ObjectTargets:
    """regions: float32 (images, rows * cols, attributes + 2), a row per
    entry of `image_paths`, or None without the grounding loss.
    anchors: uint8 (keys, rows * cols) or (keys, 2, rows * cols), a row
    per (path, question) of `question_keys`, or None without the anchor loss.
    """

    image_paths: list
    regions: np.ndarray | None
    attribute_sizes: list | None
    question_keys: list
    anchors: np.ndarray | None


@dataclasses.dataclass
class _Questions:
    # The fields of a QuestionSet that `anchor_targets` reads.
    questions: list
    image_index: np.ndarray
    image_paths: list


def question_key(path, question):
    """The key of one question's anchor target (`ObjectTargets.question_keys`)."""
    return f"{path}\n{question}"


def object_targets(data_dir, records, grid_shape, patch_size, grounding=True, num_anchors=0):
    """`ObjectTargets` of `records` ({"image", "question"} dicts) from the
    folder's scenes.jsonl.

    grounding: whether to compute the region targets. num_anchors: 0 (no
    anchor targets), 1 or 2 (`anchor_targets`).
    """
    image_paths = sorted({r["image"] for r in records})
    row = {p: i for i, p in enumerate(image_paths)}
    keys = sorted({question_key(r["image"], r["question"]) for r in records})
    regions = sizes = anchors = None
    if grounding:
        found = region_targets(data_dir, image_paths, grid_shape)
        regions, sizes = found.targets, found.attribute_sizes
    if num_anchors:
        split = [k.split("\n", 1) for k in keys]
        questions = _Questions(
            [q for _, q in split], np.array([row[p] for p, _ in split], np.int64), image_paths
        )
        anchors = anchor_targets(
            data_dir, questions, grid_shape, patch_size, num_anchors=num_anchors
        )
    return ObjectTargets(image_paths, regions, sizes, keys, anchors)
