"""Where the object a question names lies: per question, the image regions
its box covers, for supervising the anchor of `RelationalAttention`.

The named object is the first description in the question that carries an
attribute ("the red object", "the large circle", "the small cyan
triangle", "the large metal cube", "the man"; "the object closest to ..."
carries none and is skipped) and matches exactly one object of the scene.
The words are matched against the data set's own attribute values (every
string field of its scenes' objects: colour, shape, size, material, COCO's
category, multi-word ones included) and the synonyms CLEVR's and COCO's
questions use for them ("ball" for sphere, "shiny" for metal, "man" for
person). Questions that name no single object ("how many red things", "is
there a cube", "the dogs") get no target (all zeros), and the anchor loss
leaves them out.

`named_by="colour"` is the first rule this package had (the first colour
word, if that colour is unique in the scene), kept for the ablation that
measured the description rule against it.
"""

import functools

import numpy as np

from simmim_tf.data.scene_objects import object_attributes, object_box
from simmim_tf.data.vqa_dataset import read_scenes

NAMED_BY = ("description", "colour")
# Words that close a description without naming an attribute.
NOUNS = ("object", "thing")
# Attributes whose values are nouns: a description ends with one.
NOUN_ATTRIBUTES = ("shape", "category")
# The words CLEVR's and VQAv2's questions use for the scenes' values; used
# only where the value is in the data set's vocabulary.
SYNONYMS = {
    "ball": "sphere",
    "block": "cube",
    "metallic": "metal",
    "shiny": "metal",
    "matte": "rubber",
    "big": "large",
    "tiny": "small",
    "man": "person",
    "woman": "person",
    "boy": "person",
    "girl": "person",
    "child": "person",
    "kid": "person",
    "guy": "person",
    "lady": "person",
    "player": "person",
}
IRREGULAR_PLURALS = {"men": "man", "women": "woman", "people": "person", "children": "child"}


def _words(question):
    return question.lower().replace("?", " ").replace(",", " ").split()


def attribute_vocabulary(scenes):
    """{attribute: {value, ...}}: every value the scenes (a list of object
    lists) use, lower-cased, so that a question may name one no object of
    its own scene has."""
    vocabulary = {}
    for objects in scenes:
        for o in objects:
            for attribute, value in object_attributes(o).items():
                vocabulary.setdefault(attribute, set()).add(value)
    return vocabulary


@functools.lru_cache(maxsize=16)
def _lexicon(frozen):
    """{phrase (tuple of words): (kind, attribute, value)} of a vocabulary;
    kind is "adjective", "noun" or "plural"."""
    lexicon = {(n,): ("noun", None, None) for n in NOUNS}
    lexicon.update({(f"{n}s",): ("plural", None, None) for n in NOUNS})
    for attribute, values in frozen:
        noun = attribute in NOUN_ATTRIBUTES
        for value in values:
            words = [value.split()]
            words += [[w] for w, v in SYNONYMS.items() if v == value]
            for phrase in words:
                lexicon[tuple(phrase)] = ("noun" if noun else "adjective", attribute, value)
                if noun:
                    for plural in (phrase[-1] + "s", phrase[-1] + "es"):
                        lexicon[(*phrase[:-1], plural)] = ("plural", attribute, value)
                    for plural, single in IRREGULAR_PLURALS.items():
                        if phrase == [single]:
                            lexicon[(plural,)] = ("plural", attribute, value)
    return lexicon


def _lexicon_of(vocabulary):
    frozen = tuple(sorted((a, tuple(sorted(v))) for a, v in vocabulary.items()))
    return _lexicon(frozen)


def named_object(question, objects, named_by="description", vocabulary=None):
    """The one object the question names first, or None.

    objects: a scene's list from scenes.jsonl. A description is a run of
    attribute words (colour, size, material, ...) ending in a noun (a shape,
    a category, "object"/"thing"); plural nouns and descriptions without an
    attribute are not names of one object.
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
    lexicon = _lexicon_of(vocabulary or attribute_vocabulary([objects]))
    longest = max(len(phrase) for phrase in lexicon)
    words = _words(question)
    found, values, i = [], {}, 0
    while i < len(words) and len(found) < count:
        for n in range(min(longest, len(words) - i), 0, -1):
            entry = lexicon.get(tuple(words[i : i + n]))
            if entry is not None:
                break
        else:
            values, i = {}, i + 1  # any other word ends a description
            continue
        i += n
        kind, attribute, value = entry
        if kind == "adjective":
            values[attribute] = value  # the noun follows
            continue
        if kind == "plural":
            values = {}
            continue
        if attribute is not None:
            values[attribute] = value
        if values:  # a noun closes a description that names something
            matches = [
                o
                for o in objects
                if all(object_attributes(o).get(a) == v for a, v in values.items())
            ]
            found.append(matches[0] if len(matches) == 1 else None)
            values = {}
    return found + [None] * (count - len(found))


def _box_regions(obj, grid_shape, patch_size):
    """uint8 (rows * cols): 1 on the regions the object's box overlaps
    (region (r, c) covers pixels [r * patch, (r + 1) * patch))."""
    rows, cols = grid_shape
    x0, y0, x1, y1 = object_box(obj)
    r0, r1 = int(y0 // patch_size), int((y1 - 1e-6) // patch_size)
    c0, c1 = int(x0 // patch_size), int((x1 - 1e-6) // patch_size)
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
