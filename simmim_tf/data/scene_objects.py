"""What an object of `scenes.jsonl` says: where it is (its box) and what it
is (its attributes), whichever generator or importer wrote it.

An object has its centre `x`, `y` (pixels of the image in the folder) and
either `size` (the side of a square: the generators) or `width` and
`height` (a box: the CLEVR and COCO importers). Every other string field is
an attribute a question may name it by: `color`, `shape`, `size_name`,
`material`, `category`, ...
"""

GEOMETRY = ("x", "y", "size", "width", "height")


def object_box(obj):
    """(x0, y0, x1, y1): the object's box in pixels."""
    if "width" in obj:
        half_w, half_h = obj["width"] / 2, obj["height"] / 2
    else:
        half_w = half_h = obj["size"] / 2
    return obj["x"] - half_w, obj["y"] - half_h, obj["x"] + half_w, obj["y"] + half_h


def object_attributes(obj):
    """{attribute: value}: the object's string fields, lower-cased."""
    return {k: v.lower() for k, v in obj.items() if isinstance(v, str) and k not in GEOMETRY}
