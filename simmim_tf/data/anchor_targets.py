"""Where the object a question names lies: per question, the image regions
its box covers, for supervising the anchor of `RelationalAttention`.

The named object is the first description in the question that carries an
attribute ("the red object", "the large circle", "the small cyan
triangle"; "the object closest to ..." carries none and is skipped) and
matches exactly one object of the scene. Sort-of-CLEVR names one object per
question by a colour unique in the scene; CLEVR-2D names objects by their
shortest unique description. Questions that name no single object ("how
many red things", "is there a cube") get no target (all zeros), and the
anchor loss leaves them out.

`named_by="colour"` is the first rule this package had (the first colour
word, if that colour is unique in the scene), kept for the ablation that
measured the description rule against it.
"""

import numpy as np

from simmim_tf.data.vqa_dataset import read_scenes

NAMED_BY = ("description", "colour")
NOUNS = ("object", "thing")


def _words(question):
    return question.lower().replace("?", " ").replace(",", " ").split()


def _value(obj, attribute):
    return obj.get("size_name") if attribute == "size" else obj.get(attribute)


def attribute_vocabulary(scenes):
    """{"size": {...}, "color": {...}, "shape": {...}}: every value the
    scenes (a list of object lists) use, so that a question may name one no
    object of its own scene has."""
    return {
        attribute: {_value(o, attribute) for objects in scenes for o in objects} - {None}
        for attribute in ("size", "color", "shape")
    }


def named_object(question, objects, named_by="description", vocabulary=None):
    """The one object the question names first, or None.

    objects: a scene's list from scenes.jsonl (`color`, `shape`, optional
    `size_name`). A description is a run of attribute words (size, colour,
    shape) ending in a shape or "object"/"thing"; plural nouns and
    descriptions without an attribute are not names of one object.
    vocabulary: `attribute_vocabulary` of the data set; by default that of
    `objects` alone, which misreads "a brown square" in a scene without
    brown as "a square".
    """
    if named_by not in NAMED_BY:
        raise ValueError(f"named_by must be one of {NAMED_BY}; received {named_by!r}")
    if named_by == "colour":
        colours = {o.get("color") for o in objects}
        for word in _words(question):
            if word in colours:
                matches = [o for o in objects if o.get("color") == word]
                return matches[0] if len(matches) == 1 else None
        return None
    return named_objects(question, objects, vocabulary, count=1)[0]


def named_objects(question, objects, vocabulary=None, count=2):
    """The objects of the first `count` descriptions the question names, in
    order ("is the A left of the B": [A, B]), each None where its
    description matches no single object or the question has fewer."""
    vocabulary = vocabulary or attribute_vocabulary([objects])
    plurals = {f"{noun}s" for noun in NOUNS} | {f"{s}s" for s in vocabulary["shape"]}
    found, values = [], {}
    for word in _words(question):
        if len(found) == count:
            break
        attribute = next((a for a, known in vocabulary.items() if word in known), None)
        if attribute is not None:
            values[attribute] = word
            if attribute != "shape":
                continue  # a size or colour: the noun follows
        elif word in plurals:
            values = {}
            continue
        elif word not in NOUNS:
            values = {}  # any other word ends a description
            continue
        if values:  # a noun closes a description that names something
            matches = [o for o in objects if all(_value(o, a) == v for a, v in values.items())]
            found.append(matches[0] if len(matches) == 1 else None)
            values = {}
    return found + [None] * (count - len(found))


def _box_regions(obj, grid_shape, patch_size):
    """uint8 (rows * cols): 1 on the regions the object's box overlaps
    (region (r, c) covers pixels [r * patch, (r + 1) * patch))."""
    rows, cols = grid_shape
    half = obj["size"] / 2
    r0, r1 = int((obj["y"] - half) // patch_size), int((obj["y"] + half - 1e-6) // patch_size)
    c0, c1 = int((obj["x"] - half) // patch_size), int((obj["x"] + half - 1e-6) // patch_size)
    grid = np.zeros((rows, cols), np.uint8)
    grid[max(r0, 0) : min(r1, rows - 1) + 1, max(c0, 0) : min(c1, cols - 1) + 1] = 1
    return grid.reshape(-1)


def anchor_targets(
    data_dir, question_set, grid_shape, patch_size, named_by="description", num_anchors=1
):
    """uint8 (questions, rows * cols), or (questions, 2, rows * cols) for two
    anchors: 1 on the regions the named object's box overlaps, all 0 where
    the question names no single object (`named_object`; the second anchor:
    the second description of `named_objects`)."""
    scenes = read_scenes(data_dir)
    vocabulary = attribute_vocabulary(scenes.values())
    regions = grid_shape[0] * grid_shape[1]
    targets = np.zeros((len(question_set.questions), num_anchors, regions), np.uint8)
    for q, (question, image) in enumerate(
        zip(question_set.questions, question_set.image_index, strict=True)
    ):
        objects = scenes.get(question_set.image_paths[image], [])
        named = [named_object(question, objects, named_by, vocabulary)]
        if num_anchors == 2:
            named.append(named_objects(question, objects, vocabulary, count=2)[1])
        for a, obj in enumerate(named):
            if obj is not None:
                targets[q, a] = _box_regions(obj, grid_shape, patch_size)
    return targets[:, 0] if num_anchors == 1 else targets
