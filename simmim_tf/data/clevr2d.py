"""CLEVR-2D: flat scenes with CLEVR's attributes and question families, made
so that answering needs the question as much as the image.

Each image (128×128 by default) holds 3 to 10 non-overlapping objects. An
object has a colour (CLEVR's 8), a shape (square, circle, triangle,
diamond), a size (small, large) and a position. Questions come from templates
with paraphrases, in five families:

    exist     is there a <description>?                          yes / no
    count     how many <descriptions> are there?                 0 .. 10
    query     what color|shape|size is the <unique description>? attribute
    compare   does the <A> have the same color|shape|size as the <B>? yes / no
    spatial   is the <A> left of|right of|above|below the <B>?   yes / no
              what color|shape is the object closest to the <A>? attribute

A <description> names 0 to 3 of size, colour and shape ("large red circle",
"blue thing", "objects"); a unique one names exactly one object of the scene.

Balance (Johnson et al. 2017, section 3, rejection sampling to balance the
answers of each question type): for each question type and each set of
attributes named, the generator asks for the answer given least often so
far, and takes a question with that answer if the scene has one. So the
words of a question say little about its answer beyond its type;
`benchmarks/clevr2d_question_only.py` measures what a question-only model
gains over the most common answer of each type.

Each image also gets two captions (`captions.jsonl`): the objects listed from
left to right, and one spatial relation between two of them.

Output folder: images/, questions.jsonl, scenes.jsonl, captions.jsonl (the
format of docs/data.md, "Format"). Coordinates are object centres in pixels,
x rightwards and y downwards; `size` is the side or diameter in pixels and
`size_name` is small or large.
"""

import collections
import contextlib
import itertools
import json
import multiprocessing
import os

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

# CLEVR's colours (Johnson et al. 2017, supplementary material).
COLORS = {
    "gray": (87, 87, 87),
    "red": (173, 35, 35),
    "blue": (42, 75, 215),
    "green": (29, 105, 20),
    "brown": (129, 74, 25),
    "purple": (129, 38, 192),
    "cyan": (41, 208, 208),
    "yellow": (255, 238, 51),
}
SHAPES = ("square", "circle", "triangle", "diamond")
SIZES = {"small": 12, "large": 20}  # pixels at 128×128
BACKGROUND = (230, 230, 230)
ATTRIBUTES = ("size", "color", "shape")
PLURALS = {"square": "squares", "circle": "circles", "triangle": "triangles", "diamond": "diamonds"}

# Paraphrases of each question type: {d} is a description, {p} its plural.
TEMPLATES = {
    ("exist", "exist"): ("is there a {d}?", "are there any {p}?", "does the picture have a {d}?"),
    ("count", "count"): (
        "how many {p} are there?",
        "what number of {p} are there?",
        "how many {p} are in the picture?",
    ),
    ("query", "color"): ("what color is the {d}?", "what is the color of the {d}?"),
    ("query", "shape"): ("what shape is the {d}?", "what is the shape of the {d}?"),
    ("query", "size"): ("what size is the {d}?", "is the {d} large or small?"),
    ("compare", "color"): (
        "does the {d} have the same color as the {e}?",
        "is the {d} the same color as the {e}?",
    ),
    ("compare", "shape"): (
        "does the {d} have the same shape as the {e}?",
        "is the {d} the same shape as the {e}?",
    ),
    ("compare", "size"): (
        "does the {d} have the same size as the {e}?",
        "is the {d} the same size as the {e}?",
    ),
    ("spatial", "left"): ("is the {d} left of the {e}?", "is the {d} to the left of the {e}?"),
    ("spatial", "right"): ("is the {d} right of the {e}?", "is the {d} to the right of the {e}?"),
    ("spatial", "above"): ("is the {d} above the {e}?", "is the {d} higher than the {e}?"),
    ("spatial", "below"): ("is the {d} below the {e}?", "is the {d} lower than the {e}?"),
    ("spatial", "closest_color"): (
        "what color is the object closest to the {d}?",
        "what is the color of the thing nearest to the {d}?",
    ),
    ("spatial", "closest_shape"): (
        "what shape is the object closest to the {d}?",
        "what is the shape of the thing nearest to the {d}?",
    ),
}
FAMILIES = ("exist", "count", "query", "compare", "spatial")
CANDIDATES = 24  # questions drawn per slot when looking for the wanted answer


def sample_scene(rng, image_size=128, min_objects=3, max_objects=10):
    """3 to 10 objects whose bounding circles do not overlap (2 px apart)."""
    scale = image_size / 128
    while True:  # a crowded draw that cannot place every object starts over
        n = int(rng.integers(min_objects, max_objects, endpoint=True))
        objects = []
        for _ in range(n * 50):
            if len(objects) == n:
                break
            size_name = ("small", "large")[rng.integers(2)]
            size = round(SIZES[size_name] * scale)
            radius = size * 0.75  # covers a square's half-diagonal (0.707)
            x, y = (int(v) for v in rng.integers(np.ceil(radius), image_size - radius, size=2))
            if all(
                np.hypot(x - o["x"], y - o["y"]) > radius + o["size"] * 0.75 + 2 for o in objects
            ):
                objects.append(
                    {
                        "color": list(COLORS)[rng.integers(len(COLORS))],
                        "shape": SHAPES[rng.integers(len(SHAPES))],
                        "x": x,
                        "y": y,
                        "size": size,
                        "size_name": size_name,
                    }
                )
        if len(objects) == n:
            return objects


def render(objects, image_size=128):
    image = Image.new("RGB", (image_size, image_size), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for o in objects:
        h, x, y, fill = o["size"] / 2, o["x"], o["y"], COLORS[o["color"]]
        if o["shape"] == "square":
            draw.rectangle((x - h, y - h, x + h - 1, y + h - 1), fill=fill)
        elif o["shape"] == "circle":
            draw.ellipse((x - h, y - h, x + h - 1, y + h - 1), fill=fill)
        elif o["shape"] == "triangle":
            draw.polygon([(x, y - h), (x + h, y + h), (x - h, y + h)], fill=fill)
        else:  # diamond
            draw.polygon([(x, y - h), (x + h, y), (x, y + h), (x - h, y)], fill=fill)
    return image


# -- descriptions -------------------------------------------------------------


def _value(obj, attribute):
    return obj["size_name"] if attribute == "size" else obj[attribute]


def describe(values, plural=False, rng=None):
    """ "large red circle" / "red things"; `values` maps attribute -> value."""
    noun = values.get("shape")
    if noun is None:
        noun = ("object", "thing")[rng.integers(2)] if rng is not None else "object"
        noun = noun + "s" if plural else noun
    elif plural:
        noun = PLURALS[noun]
    words = [values[a] for a in ("size", "color") if a in values]
    return " ".join(words + [noun])


def matches(obj, values):
    return all(_value(obj, a) == v for a, v in values.items())


def _unique_description(objects, target, rng, exclude=()):
    """Attribute values that pick out `target` alone, fewest attributes first."""
    kinds = [a for a in ATTRIBUTES if a not in exclude]
    subsets = [c for k in range(1, len(kinds) + 1) for c in itertools.combinations(kinds, k)]
    order = rng.permutation(len(subsets))
    # Shortest unique description, ties broken at random, as people describe.
    for subset in sorted((subsets[i] for i in order), key=len):
        values = {a: _value(target, a) for a in subset}
        if sum(matches(o, values) for o in objects) == 1:
            return values
    return None


# -- questions ----------------------------------------------------------------


def _candidate(objects, family, subtype, rng):
    """One random question of a type: (template slots, answer, balance key) or None."""
    if family in ("exist", "count"):
        kinds = [a for a in ATTRIBUTES if rng.random() < 0.5]
        if family == "exist" and not kinds:
            kinds = [ATTRIBUTES[rng.integers(3)]]
        values = {a: _random_value(a, rng) for a in kinds}
        n = sum(matches(o, values) for o in objects)
        answer = ("yes" if n else "no") if family == "exist" else str(n)
        return {"values": values}, answer, tuple(kinds)
    if family == "query":
        target = objects[rng.integers(len(objects))]
        values = _unique_description(objects, target, rng, exclude=(subtype,))
        if values is None:
            return None
        return {"values": values}, _value(target, subtype), tuple(values)
    a, b = (objects[i] for i in rng.choice(len(objects), 2, replace=False))
    # A comparison never names the attribute it compares: "is the red circle
    # the same color as the red square" would answer itself.
    exclude = (subtype,) if family == "compare" else ()
    first = _unique_description(objects, a, rng, exclude)
    if first is None:
        return None
    if subtype.startswith("closest_"):
        others = [o for o in objects if o is not a]
        dist = [np.hypot(o["x"] - a["x"], o["y"] - a["y"]) for o in others]
        nearest = others[int(np.argmin(dist))]
        return {"values": first}, _value(nearest, subtype.split("_")[1]), tuple(first)
    second = _unique_description(objects, b, rng, exclude)
    if second is None:
        return None
    if family == "compare":
        answer = "yes" if _value(a, subtype) == _value(b, subtype) else "no"
    else:
        answer = "yes" if _spatial(a, b, subtype) else "no"
    return {"values": first, "other": second}, answer, (tuple(first), tuple(second))


def _spatial(a, b, relation):
    return {
        "left": a["x"] < b["x"],
        "right": a["x"] > b["x"],
        "above": a["y"] < b["y"],
        "below": a["y"] > b["y"],
    }[relation]


def _random_value(attribute, rng):
    choices = {"size": tuple(SIZES), "color": tuple(COLORS), "shape": SHAPES}[attribute]
    return choices[rng.integers(len(choices))]


def _question_text(family, subtype, slots, rng):
    templates = TEMPLATES[(family, subtype)]
    template = templates[rng.integers(len(templates))]
    return template.format(
        d=describe(slots["values"], rng=rng),
        p=describe(slots["values"], plural=True, rng=rng),
        e=describe(slots.get("other", {}), rng=rng) if "other" in slots else "",
    )


def questions_for(objects, rng, answer_counts, per_family=4):
    """`per_family` questions of each family about one scene, answers balanced.

    answer_counts: Counter over (family, subtype, key, answer), shared across
    the scenes of a chunk; each slot takes the least-given answer of its type
    and key among the questions drawn.
    """
    out = []
    for family in FAMILIES:
        subtypes = [s for f, s in TEMPLATES if f == family]
        for _ in range(per_family):
            subtype = subtypes[rng.integers(len(subtypes))]
            drawn = [_candidate(objects, family, subtype, rng) for _ in range(CANDIDATES)]
            drawn = [d for d in drawn if d is not None]
            if not drawn:
                continue  # no object has a unique description: one question fewer
            # The candidate whose answer this type and key has given least.
            slots, answer, key = min(
                drawn, key=lambda d: answer_counts[(family, subtype, d[2], d[1])]
            )
            answer_counts[(family, subtype, key, answer)] += 1
            out.append(
                {
                    "question": _question_text(family, subtype, slots, rng),
                    "answer": answer,
                    "family": family,
                    "subtype": subtype,
                }
            )
    return out


def captions_for(objects, rng):
    """Two captions: every object from left to right, and one spatial relation."""
    ordered = sorted(objects, key=lambda o: o["x"])
    names = [describe({a: _value(o, a) for a in ATTRIBUTES}) for o in ordered]
    listing = f"{len(objects)} objects, from left to right: " + ", ".join(f"a {n}" for n in names)
    a, b = (objects[i] for i in rng.choice(len(objects), 2, replace=False))
    relation = "to the left of" if a["x"] < b["x"] else "to the right of"
    describe_full = lambda o: describe({k: _value(o, k) for k in ATTRIBUTES})  # noqa: E731
    pair = f"a {describe_full(a)} {relation} a {describe_full(b)}"
    return [listing, pair]


CHUNK = 250  # images per unit of parallel work


def _chunk(args):
    """Images [start, stop) written to disk; their JSON lines returned, in order.

    Each chunk draws from its own generator (seed, chunk index) and balances
    its own answers, so the output does not depend on the number of workers.
    """
    out_dir, index, start, stop, num_images, num_test, seed, image_size, per_family = args
    rng = np.random.default_rng([seed, index])
    answer_counts = collections.Counter()
    lines = ([], [], [])
    for i in range(start, stop):
        split = "test" if i >= num_images - num_test else "train"
        objects = sample_scene(rng, image_size)
        image = f"images/{i:06d}.png"
        render(objects, image_size).save(os.path.join(out_dir, image))
        lines[1].append(json.dumps({"image": image, "split": split, "objects": objects}))
        for q in questions_for(objects, rng, answer_counts, per_family):
            lines[0].append(json.dumps({"image": image, **q, "split": split}))
        for caption in captions_for(objects, rng):
            lines[2].append(json.dumps({"image": image, "caption": caption, "split": split}))
    return lines


def generate(
    out_dir,
    num_images=10000,
    seed=0,
    num_test=None,
    image_size=128,
    per_family=4,
    progress=True,
    workers=None,
):
    """Writes a CLEVR-2D data set; the last `num_test` images are the test split.

    Chunks of 250 images are made in parallel by `workers` processes (default:
    one per CPU). Deterministic for a seed, whatever the number of workers.
    Returns the number of questions written.
    """
    if num_images < 1:
        raise ValueError(f"num_images must be at least 1; received {num_images}")
    if image_size < 64:
        raise ValueError(f"image_size must be at least 64 to fit 10 objects; got {image_size}")
    num_test = min(500, num_images // 10) if num_test is None else num_test
    os.makedirs(os.path.join(out_dir, "images"), exist_ok=True)
    starts = range(0, num_images, CHUNK)
    jobs = [
        (out_dir, index, start, min(start + CHUNK, num_images), num_images, num_test, seed)
        + (image_size, per_family)
        for index, start in enumerate(starts)
    ]
    workers = min(workers or os.cpu_count() or 1, len(jobs))
    names = ("questions.jsonl", "scenes.jsonl", "captions.jsonl")
    tmp = [os.path.join(out_dir, f) + ".tmp" for f in names]
    n_questions = 0
    bar = tqdm(total=num_images, desc="clevr2d", unit="img", disable=not progress)
    with contextlib.ExitStack() as stack:
        files = [stack.enter_context(open(t, "w")) for t in tmp]
        if workers > 1:
            pool = stack.enter_context(multiprocessing.get_context("spawn").Pool(workers))
            results = pool.imap(_chunk, jobs)  # in order
        else:
            results = map(_chunk, jobs)
        for job, lines in zip(jobs, results, strict=True):
            for f, chunk_lines in zip(files, lines, strict=True):
                f.writelines(line + "\n" for line in chunk_lines)
            n_questions += len(lines[0])
            bar.update(job[3] - job[2])
    bar.close()
    for t, name in zip(tmp, names, strict=True):  # complete files appear at once
        os.replace(t, os.path.join(out_dir, name))
    return n_questions
