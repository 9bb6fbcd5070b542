"""CLEVR-2D against its specification: scene statistics, every answer
recomputed from scenes.jsonl by parsing the question text, balance,
captions, determinism."""

import collections
import json
import os

import numpy as np
import pytest
from PIL import Image

from simmim_tf.data import clevr2d
from simmim_tf.data.folder_validation import validate_folder
from simmim_tf.preprocessing.question_tokenizer import split_words

COLOR_WORDS = set(clevr2d.COLORS)
SIZE_WORDS = {"small", "large"}
SHAPE_WORDS = {s: s for s in clevr2d.SHAPES} | {s + "s": s for s in clevr2d.SHAPES}
NOUNS = {"object", "objects", "thing", "things"} | set(SHAPE_WORDS)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("clevr2d"))
    n = clevr2d.generate(out, num_images=80, seed=11, progress=False)
    read = lambda f: [json.loads(x) for x in open(os.path.join(out, f))]  # noqa: E731
    return out, n, read("questions.jsonl"), read("scenes.jsonl"), read("captions.jsonl")


def _descriptions(words):
    """Each noun with the size/colour words just before it, as attribute filters."""
    found = []
    for i, w in enumerate(words):
        if w in NOUNS and not (w in ("object", "thing") and words[i + 1 : i + 2] == ["closest"]):
            values, j = {}, i - 1
            while j >= 0 and (words[j] in COLOR_WORDS or words[j] in SIZE_WORDS):
                values["color" if words[j] in COLOR_WORDS else "size"] = words[j]
                j -= 1
            if w in SHAPE_WORDS:
                values["shape"] = SHAPE_WORDS[w]
            found.append(values)
    return found


def _matching(objects, values):
    get = lambda o, a: o["size_name"] if a == "size" else o[a]  # noqa: E731
    return [o for o in objects if all(get(o, a) == v for a, v in values.items())]


def _the(objects, values):
    (obj,) = _matching(objects, values)  # a unique description names exactly one object
    return obj


def _independent_answer(text, objects):
    words = split_words(text)
    joined = " ".join(words)
    desc = _descriptions(words)
    get = lambda o, a: o["size_name"] if a == "size" else o[a]  # noqa: E731
    if "closest" in words or "nearest" in words:
        a = _the(objects, desc[-1])
        others = [o for o in objects if o is not a]
        near = min(others, key=lambda o: (o["x"] - a["x"]) ** 2 + (o["y"] - a["y"]) ** 2)
        return near["color"] if "color" in words else near["shape"]
    if "same" in words:
        attribute = words[words.index("same") + 1]
        a, b = _the(objects, desc[0]), _the(objects, desc[1])
        return "yes" if get(a, attribute) == get(b, attribute) else "no"
    for phrase, test in (
        ("left of", lambda a, b: a["x"] < b["x"]),
        ("right of", lambda a, b: a["x"] > b["x"]),
        ("above", lambda a, b: a["y"] < b["y"]),
        ("higher than", lambda a, b: a["y"] < b["y"]),
        ("below", lambda a, b: a["y"] > b["y"]),
        ("lower than", lambda a, b: a["y"] > b["y"]),
    ):
        if phrase in joined:
            return "yes" if test(_the(objects, desc[0]), _the(objects, desc[1])) else "no"
    if joined.startswith(("how many", "what number")):
        return str(len(_matching(objects, desc[0])))
    if joined.startswith(("is there", "are there any", "does the picture have")):
        return "yes" if _matching(objects, desc[0]) else "no"
    if "large or small" in joined or "size" in words:
        return _the(objects, desc[0])["size_name"]
    for attribute in ("color", "shape"):
        if attribute in words:
            return _the(objects, desc[0])[attribute]
    raise AssertionError(f"unrecognised question {text!r}")


def test_every_answer_matches_the_scene(dataset):
    _, n, questions, scenes, _ = dataset
    objects = {s["image"]: s["objects"] for s in scenes}
    assert n == len(questions) > 80 * 18  # 4 per family; a slot is rarely unfillable
    for q in questions:
        assert q["answer"] == _independent_answer(q["question"], objects[q["image"]]), q


def test_scenes_follow_the_specification(dataset):
    out, _, _, scenes, _ = dataset
    all_objects = [o for s in scenes for o in s["objects"]]
    assert {len(s["objects"]) for s in scenes} <= set(range(3, 11))
    assert len({len(s["objects"]) for s in scenes}) >= 6  # the whole range is used
    for attribute, values in (
        ("color", clevr2d.COLORS),
        ("shape", clevr2d.SHAPES),
        ("size_name", clevr2d.SIZES),
    ):
        counts = collections.Counter(o[attribute] for o in all_objects)
        expected = len(all_objects) / len(values)
        assert set(counts) == set(values)
        assert all(0.6 * expected < c < 1.4 * expected for c in counts.values()), counts
    for scene in scenes:
        objects = scene["objects"]
        image = np.asarray(Image.open(os.path.join(out, scene["image"])))
        assert image.shape == (128, 128, 3)
        for i, a in enumerate(objects):
            assert tuple(image[a["y"], a["x"]]) == clevr2d.COLORS[a["color"]]
            for b in objects[i + 1 :]:  # bounding circles apart
                gap = np.hypot(a["x"] - b["x"], a["y"] - b["y"]) - 0.75 * (a["size"] + b["size"])
                assert gap > 0


def test_answers_are_balanced(dataset):
    _, _, questions, _, _ = dataset
    families = collections.Counter(q["family"] for q in questions)
    assert set(families) == set(clevr2d.FAMILIES)
    for family in ("exist", "compare"):
        answers = collections.Counter(q["answer"] for q in questions if q["family"] == family)
        assert 0.4 < answers["yes"] / sum(answers.values()) < 0.6, (family, answers)
    for subtype in ("left", "right", "above", "below"):
        answers = collections.Counter(q["answer"] for q in questions if q["subtype"] == subtype)
        assert abs(answers["yes"] - answers["no"]) <= 0.25 * sum(answers.values()) + 2
    counts = collections.Counter(q["answer"] for q in questions if q["family"] == "count")
    assert max(counts.values()) < 0.25 * sum(counts.values())  # no dominant count
    paraphrases = {q["question"].split(" ")[0] for q in questions if q["family"] == "exist"}
    assert paraphrases == {"is", "are", "does"}


def test_captions(dataset):
    _, _, _, scenes, captions = dataset
    by_image = collections.defaultdict(list)
    for c in captions:
        by_image[c["image"]].append(c["caption"])
    for scene in scenes:
        listing, relation = by_image[scene["image"]]
        objects = sorted(scene["objects"], key=lambda o: o["x"])
        assert listing.startswith(f"{len(objects)} objects")
        named = [f"{o['size_name']} {o['color']} {o['shape']}" for o in objects]
        assert listing.split(": ")[1] == ", ".join(f"a {n}" for n in named)
        assert " to the left of " in relation or " to the right of " in relation


def test_output_is_a_valid_data_folder(dataset):
    out = dataset[0]
    problems, counts = validate_folder(out)
    assert problems == [] and counts["captions"] == 80 and counts["images"] == 80


def test_deterministic_for_a_seed_whatever_the_workers(tmp_path, monkeypatch):
    monkeypatch.setattr(clevr2d, "CHUNK", 2)  # 3 chunks of work for 5 images
    a, b, c = (str(tmp_path / d) for d in "abc")
    for out, seed, workers in ((a, 1, 1), (b, 1, 2), (c, 2, 2)):
        clevr2d.generate(out, num_images=5, seed=seed, progress=False, workers=workers)
    read = lambda d, f: open(os.path.join(d, f), "rb").read()  # noqa: E731
    for f in ("questions.jsonl", "captions.jsonl", "scenes.jsonl", "images/000004.png"):
        assert read(a, f) == read(b, f)
    assert read(a, "scenes.jsonl") != read(c, "scenes.jsonl")
    assert [json.loads(x)["image"] for x in read(a, "scenes.jsonl").splitlines()] == [
        f"images/{i:06d}.png" for i in range(5)
    ]
