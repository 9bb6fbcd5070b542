"""Sort-of-CLEVR (Santoro et al. 2017, "A simple neural network module for
relational reasoning", appendix D).

Each 75×75 image holds 6 objects, one of each colour, each a square or a
circle, not overlapping. Per image: 10 non-relational questions (the shape
of the X object; is it on the left; is it on the top) and 10 relational ones
(the shape of the object closest to X; of the object furthest from X; how
many objects have the same shape as X, X included). With `ternary=True`,
10 more questions per image about three objects, the common extension of the
data set, defined here as:
    between   how many objects lie between the X and the Y object (their
              centres inside the rectangle spanned by X's and Y's centres)
    on_line   is there an object on the segment from X to Y (an object whose
              centre is within half an object size of the segment)
    obtuse    how many objects form an obtuse triangle with X and Y (some
              angle above 90 degrees, by the sign of a dot product)

Output folder:
    images/000000.png ...
    questions.jsonl   {"image", "question", "answer", "family", "subtype", "split"}
    scenes.jsonl      {"image", "split", "objects": [{"color", "shape", "x", "y", "size"}]}
Coordinates are object centres in pixels, x rightwards and y downwards from
the top-left corner.
"""

import json
import os

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

IMAGE_SIZE = 75
OBJECT_SIZE = 10  # side of a square, diameter of a circle, in pixels
COLORS = {
    "red": (255, 0, 0),
    "green": (0, 200, 0),
    "blue": (0, 0, 255),
    "orange": (255, 156, 0),
    "yellow": (255, 255, 0),
    "gray": (128, 128, 128),
}
SHAPES = ("square", "circle")
QUESTIONS_PER_FAMILY = 10

TEMPLATES = {
    ("non_relational", "shape"): "what is the shape of the {c} object?",
    ("non_relational", "horizontal"): "is the {c} object on the left?",
    ("non_relational", "vertical"): "is the {c} object on the top?",
    ("relational", "closest"): "what is the shape of the object closest to the {c} object?",
    ("relational", "furthest"): "what is the shape of the object furthest from the {c} object?",
    ("relational", "count"): "how many objects have the same shape as the {c} object?",
    ("ternary", "between"): "how many objects are between the {c} object and the {d} object?",
    ("ternary", "on_line"): "is there an object on the line from the {c} object to the {d} object?",
    ("ternary", "obtuse"): (
        "how many objects form an obtuse triangle with the {c} object and the {d} object?"
    ),
}


def sample_scene(rng):
    """Six objects with non-overlapping bounding squares, one per colour."""
    half = OBJECT_SIZE / 2
    centres = []
    while len(centres) < len(COLORS):
        x, y = rng.integers(half, IMAGE_SIZE - half, size=2, endpoint=True)
        # Bounding squares of side OBJECT_SIZE are disjoint, with one pixel
        # of gap, when the centres differ by more than a side on some axis.
        if all(max(abs(x - cx), abs(y - cy)) > OBJECT_SIZE for cx, cy in centres):
            centres.append((int(x), int(y)))
    return [
        {"color": color, "shape": SHAPES[rng.integers(2)], "x": x, "y": y, "size": OBJECT_SIZE}
        for color, (x, y) in zip(COLORS, centres, strict=True)
    ]


def render(objects):
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    half = OBJECT_SIZE / 2
    for o in objects:
        box = (o["x"] - half, o["y"] - half, o["x"] + half - 1, o["y"] + half - 1)
        if o["shape"] == "square":
            draw.rectangle(box, fill=COLORS[o["color"]])
        else:
            draw.ellipse(box, fill=COLORS[o["color"]])
    return image


def answer(objects, family, subtype, color, other_color=None):
    """The answer to a question, computed from the scene alone."""
    by_color = {o["color"]: o for o in objects}
    target = by_color[color]
    if family == "ternary":
        return _ternary_answer(objects, subtype, target, by_color[other_color])
    if subtype == "shape":
        return target["shape"]
    if subtype == "horizontal":
        return "yes" if target["x"] < IMAGE_SIZE / 2 else "no"
    if subtype == "vertical":
        return "yes" if target["y"] < IMAGE_SIZE / 2 else "no"
    others = [o for o in objects if o is not target]
    dist = [(o["x"] - target["x"]) ** 2 + (o["y"] - target["y"]) ** 2 for o in others]
    if subtype == "closest":
        return others[int(np.argmin(dist))]["shape"]
    if subtype == "furthest":
        return others[int(np.argmax(dist))]["shape"]
    if subtype == "count":
        return str(sum(o["shape"] == target["shape"] for o in objects))
    raise ValueError(f"unknown question {family}/{subtype}")


def _ternary_answer(objects, subtype, a, b):
    p, q = np.array([a["x"], a["y"]], float), np.array([b["x"], b["y"]], float)
    others = [np.array([o["x"], o["y"]], float) for o in objects if o is not a and o is not b]
    if subtype == "between":
        low, high = np.minimum(p, q), np.maximum(p, q)
        return str(sum(bool(np.all((low <= r) & (r <= high))) for r in others))
    if subtype == "on_line":
        # Distance from each centre to its nearest point on the segment.
        t = [np.clip(np.dot(r - p, q - p) / np.dot(q - p, q - p), 0, 1) for r in others]
        dist = [np.linalg.norm(r - (p + ti * (q - p))) for r, ti in zip(others, t, strict=True)]
        return "yes" if min(dist) <= OBJECT_SIZE / 2 else "no"
    if subtype == "obtuse":
        obtuse = 0
        for r in others:
            corners = ((p, q, r), (q, r, p), (r, p, q))
            obtuse += any(np.dot(u - v, w - v) < 0 for u, v, w in corners)
        return str(obtuse)
    raise ValueError(f"unknown ternary question {subtype}")


def questions_for(objects, rng, ternary=False):
    """10 non-relational, 10 relational and (if asked) 10 ternary questions about one scene."""
    out = []
    families = ("non_relational", "relational") + (("ternary",) if ternary else ())
    for family in families:
        subtypes = [s for f, s in TEMPLATES if f == family]
        for _ in range(QUESTIONS_PER_FAMILY):
            subtype = subtypes[rng.integers(len(subtypes))]
            color = list(COLORS)[rng.integers(len(COLORS))]
            other = None
            if family == "ternary":  # a second, different colour
                other = [c for c in COLORS if c != color][rng.integers(len(COLORS) - 1)]
            out.append(
                {
                    "question": TEMPLATES[(family, subtype)].format(c=color, d=other),
                    "answer": answer(objects, family, subtype, color, other),
                    "family": family,
                    "subtype": subtype,
                }
            )
    return out


def default_num_test(num_images):
    """200 test images as in the paper (of 10,000), at most a tenth of the set."""
    return min(200, num_images // 10)


def generate(out_dir, num_images=10000, seed=0, num_test=None, progress=True, ternary=False):
    """Writes a Sort-of-CLEVR data set; the last `num_test` images are the test split.

    Deterministic for a seed: the same arguments give byte-identical files.
    Returns the number of questions written.
    """
    if num_images < 1:
        raise ValueError(f"num_images must be at least 1; received {num_images}")
    num_test = default_num_test(num_images) if num_test is None else num_test
    os.makedirs(os.path.join(out_dir, "images"), exist_ok=True)
    rng = np.random.default_rng(seed)
    n_questions = 0
    # Written to temporary names and renamed at the end, so that an
    # interrupted run never leaves a folder that looks complete.
    q_tmp, s_tmp = (os.path.join(out_dir, f) + ".tmp" for f in ("questions.jsonl", "scenes.jsonl"))
    with open(q_tmp, "w") as qf, open(s_tmp, "w") as sf:
        for i in tqdm(range(num_images), desc="sort-of-clevr", unit="img", disable=not progress):
            split = "test" if i >= num_images - num_test else "train"
            objects = sample_scene(rng)
            image = f"images/{i:06d}.png"
            render(objects).save(os.path.join(out_dir, image))
            sf.write(json.dumps({"image": image, "split": split, "objects": objects}) + "\n")
            for q in questions_for(objects, rng, ternary):
                qf.write(json.dumps({"image": image, **q, "split": split}) + "\n")
                n_questions += 1
    os.replace(q_tmp, os.path.join(out_dir, "questions.jsonl"))
    os.replace(s_tmp, os.path.join(out_dir, "scenes.jsonl"))
    return n_questions
