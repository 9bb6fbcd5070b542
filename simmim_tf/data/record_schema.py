"""The on-disk format of a simmim_tf data folder, and the check of one record.

A data folder holds:
    images/              PNG (or JPEG) files, RGB
    questions.jsonl      one question per line (QUESTION_SCHEMA)
    scenes.jsonl         optional: one scene per image (SCENE_SCHEMA)
    captions.jsonl       optional: one caption per line (CAPTION_SCHEMA)

Each schema maps a field to (accepted JSON types, required). Fields not named
are allowed and kept (importers store ids and the ten VQAv2 answers there).
The checks are hand-written rather than a JSON Schema document so that
reading a data set needs no extra dependency.
"""

import os

STR, NUM, LIST, DICT = (str,), (int, float), (list,), (dict,)

QUESTION_SCHEMA = {
    "image": (STR, True),  # path relative to the folder, e.g. "images/000001.png"
    "question": (STR, True),
    "answer": (STR, True),
    "family": (STR, True),  # e.g. non_relational, relational, ternary, count
    "split": (STR, True),  # train, test, val ...
    "subtype": (STR, False),
    "question_id": ((str, int), False),
    "answers": (LIST, False),  # VQAv2: the ten human answers, for VQA accuracy
}
SCENE_SCHEMA = {
    "image": (STR, True),
    "split": (STR, True),
    "objects": (LIST, True),
}
# An object's other string fields are attributes too (size_name, material,
# category: simmim_tf.data.scene_objects).
OBJECT_SCHEMA = {
    "x": (NUM, True),  # centre, pixels, rightwards from the left edge
    "y": (NUM, True),  # centre, pixels, downwards from the top edge
    "size": (NUM, False),  # side or diameter, pixels; or:
    "width": (NUM, False),  # the box's width and height, pixels
    "height": (NUM, False),
    "color": (STR, False),
    "shape": (STR, False),
}
CAPTION_SCHEMA = {
    "image": (STR, True),
    "caption": (STR, True),
    "split": (STR, True),
}
SCHEMAS = {
    "questions.jsonl": QUESTION_SCHEMA,
    "scenes.jsonl": SCENE_SCHEMA,
    "captions.jsonl": CAPTION_SCHEMA,
}
_TYPE_NAMES = {str: "string", int: "integer", float: "number", list: "list", dict: "object"}


def record_problems(record, schema):
    """What is wrong with one decoded JSON record, as a list of short phrases."""
    if not isinstance(record, dict):
        return ["expected a JSON object"]
    problems = []
    for field, (types, required) in schema.items():
        if field not in record:
            if required:
                problems.append(f"missing field {field!r}")
            continue
        value = record[field]
        # bool is an int in Python, never a valid number or string here.
        if isinstance(value, bool) or not isinstance(value, types):
            expected = " or ".join(_TYPE_NAMES[t] for t in types)
            problems.append(f"field {field!r} must be a {expected}, got {value!r:.40}")
        elif isinstance(value, str) and not value.strip() and required:
            problems.append(f"field {field!r} is empty")
    for field in ("image", "clip"):
        if not problems and field in schema:
            problems += _image_path_problems(record[field], field)
    if not problems and schema is SCENE_SCHEMA:
        for i, obj in enumerate(record["objects"]):
            problems += [f"objects[{i}]: {p}" for p in record_problems(obj, OBJECT_SCHEMA)]
            has_box = isinstance(obj, dict) and ("size" in obj or {"width", "height"} <= set(obj))
            if not problems and not has_box:
                problems.append(f"objects[{i}]: needs 'size' or 'width' and 'height'")
    if not problems and schema is QUESTION_SCHEMA and "answers" in record:
        if not all(isinstance(a, str) for a in record["answers"]):
            problems.append("field 'answers' must be a list of strings")
    return problems


def _image_path_problems(path, field="image"):
    # Paths stay inside the data folder: a record cannot point the loader
    # at an arbitrary file (or clip folder) on the machine.
    if os.path.isabs(path) or ".." in path.replace("\\", "/").split("/"):
        return [f"{field} path {path!r} must be relative and inside the data folder"]
    return []
