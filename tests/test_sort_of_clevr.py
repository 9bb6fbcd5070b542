import collections
import json
import os

import numpy as np
import pytest
from PIL import Image

from simmim_tf.data import sort_of_clevr
from simmim_tf.data.sort_of_clevr import COLORS, IMAGE_SIZE, OBJECT_SIZE


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("soc"))
    n = sort_of_clevr.generate(out, num_images=60, seed=7, progress=False)
    questions = [json.loads(line) for line in open(os.path.join(out, "questions.jsonl"))]
    scenes = [json.loads(line) for line in open(os.path.join(out, "scenes.jsonl"))]
    return out, n, questions, scenes


def test_counts_and_fields(dataset):
    out, n, questions, scenes = dataset
    assert n == len(questions) == 60 * 20
    assert len(scenes) == 60
    assert collections.Counter(q["family"] for q in questions) == {
        "non_relational": 600,
        "relational": 600,
    }
    assert {"image", "question", "answer", "family", "subtype", "split"} <= questions[0].keys()
    assert sum(s["split"] == "test" for s in scenes) == sort_of_clevr.default_num_test(60) == 6
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]


def test_scenes_follow_the_specification(dataset):
    out, _, _, scenes = dataset
    for scene in scenes:
        objects = scene["objects"]
        assert sorted(o["color"] for o in objects) == sorted(COLORS)
        assert {o["shape"] for o in objects} <= {"square", "circle"}
        for i, a in enumerate(objects):
            assert OBJECT_SIZE / 2 <= a["x"] <= IMAGE_SIZE - OBJECT_SIZE / 2
            for b in objects[i + 1 :]:
                assert max(abs(a["x"] - b["x"]), abs(a["y"] - b["y"])) > OBJECT_SIZE  # no overlap
        image = np.asarray(Image.open(os.path.join(out, scene["image"])))
        assert image.shape == (IMAGE_SIZE, IMAGE_SIZE, 3)
        for o in objects:  # each object's centre pixel has its colour (x right, y down)
            assert tuple(image[o["y"], o["x"]]) == COLORS[o["color"]]


def _independent_answer(question, objects):
    """Recomputes an answer from the question text and the scene, without the generator."""
    text = question["question"]
    color = next(c for c in COLORS if f" {c} " in text)
    target = next(o for o in objects if o["color"] == color)
    others = [o for o in objects if o is not target]
    dist = [np.hypot(o["x"] - target["x"], o["y"] - target["y"]) for o in others]
    if text.startswith("what is the shape of the object closest"):
        return others[int(np.argmin(dist))]["shape"]
    if text.startswith("what is the shape of the object furthest"):
        return others[int(np.argmax(dist))]["shape"]
    if text.startswith("how many"):
        return str(sum(o["shape"] == target["shape"] for o in objects))
    if text.startswith("what is the shape"):
        return target["shape"]
    if text.endswith("on the left?"):
        return "yes" if target["x"] < 37.5 else "no"
    if text.endswith("on the top?"):
        return "yes" if target["y"] < 37.5 else "no"
    raise AssertionError(f"unrecognised question {text!r}")


def test_every_answer_matches_the_scene(dataset):
    _, _, questions, scenes = dataset
    objects = {s["image"]: s["objects"] for s in scenes}
    for q in questions:
        assert q["answer"] == _independent_answer(q, objects[q["image"]]), q


def test_answer_distribution(dataset):
    _, _, questions, _ = dataset
    answers = collections.Counter(q["answer"] for q in questions if q["family"] == "relational")
    assert set(answers) <= {"square", "circle", "1", "2", "3", "4", "5", "6"}
    counts = collections.Counter(q["answer"] for q in questions if q["subtype"] == "horizontal")
    assert 0.3 < counts["yes"] / sum(counts.values()) < 0.7


def test_deterministic_for_a_seed(tmp_path):
    a, b, c = (str(tmp_path / d) for d in "abc")
    for out, seed in ((a, 1), (b, 1), (c, 2)):
        sort_of_clevr.generate(out, num_images=5, seed=seed, progress=False)
    read = lambda d, f: open(os.path.join(d, f), "rb").read()  # noqa: E731
    assert read(a, "questions.jsonl") == read(b, "questions.jsonl")
    assert read(a, "images/000004.png") == read(b, "images/000004.png")
    assert read(a, "scenes.jsonl") != read(c, "scenes.jsonl")


def test_read_scenes_and_its_errors(dataset, tmp_path):
    from simmim_tf.data.vqa_dataset import read_scenes
    from simmim_tf.errors import SimMIMInputError

    out, _, _, scenes = dataset
    assert read_scenes(out) == {s["image"]: s["objects"] for s in scenes}
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "scenes.jsonl").write_text(
        '{"image": "a.png", "split": "train", "objects": []}\n{"image": 3, "split": "test"}\n'
    )
    with pytest.raises(
        SimMIMInputError, match=r"scenes.jsonl:2: field 'image' must be .*; missing field 'objects'"
    ):
        read_scenes(str(bad))
    with pytest.raises(SimMIMInputError, match="only generated data sets have scenes"):
        read_scenes(str(tmp_path))


def _ternary_answer(text, objects):
    """Ternary answers by other geometry than the generator's: angles, cross products."""
    a_color, b_color = [c for c in text.replace("?", " ").split() if c in COLORS]
    by_color = {o["color"]: np.array([o["x"], o["y"]], float) for o in objects}
    p, q = by_color[a_color], by_color[b_color]
    others = [v for c, v in by_color.items() if c not in (a_color, b_color)]
    if text.startswith("how many objects are between"):
        low, high = np.minimum(p, q), np.maximum(p, q)
        return str(sum(low[0] <= r[0] <= high[0] and low[1] <= r[1] <= high[1] for r in others))
    if text.startswith("is there an object on the line"):

        def distance(r):
            d = q - p
            if np.dot(r - p, d) <= 0:
                return np.linalg.norm(r - p)
            if np.dot(r - q, -d) <= 0:
                return np.linalg.norm(r - q)
            return abs(d[0] * (r - p)[1] - d[1] * (r - p)[0]) / np.linalg.norm(d)

        return "yes" if any(distance(r) <= OBJECT_SIZE / 2 + 1e-9 for r in others) else "no"
    if text.startswith("how many objects form an obtuse triangle"):

        def angle(at, u, v):
            x, y = u - at, v - at
            return np.degrees(
                np.arccos(np.clip(x @ y / np.linalg.norm(x) / np.linalg.norm(y), -1, 1))
            )

        return str(
            sum(max(angle(p, q, r), angle(q, r, p), angle(r, p, q)) > 90 + 1e-9 for r in others)
        )
    raise AssertionError(f"unrecognised question {text!r}")


def test_ternary_questions(tmp_path):
    out = str(tmp_path / "ternary")
    assert sort_of_clevr.generate(out, num_images=40, seed=4, progress=False, ternary=True) == 1200
    questions = [json.loads(line) for line in open(os.path.join(out, "questions.jsonl"))]
    objects = {s["image"]: s["objects"] for s in map(json.loads, open(f"{out}/scenes.jsonl"))}
    ternary = [q for q in questions if q["family"] == "ternary"]
    assert len(ternary) == 400
    assert {q["subtype"] for q in ternary} == {"between", "on_line", "obtuse"}
    for q in ternary:
        assert q["answer"] == _ternary_answer(q["question"], objects[q["image"]]), q
    answers = collections.Counter(q["answer"] for q in ternary if q["subtype"] == "on_line")
    assert answers["yes"] > 10 and answers["no"] > 10  # both answers occur
    # Ternary questions are drawn after the binary ones: the first image's
    # scene and binary questions are those of a run without them.
    plain = str(tmp_path / "plain")
    sort_of_clevr.generate(plain, num_images=40, seed=4, progress=False)
    plain_questions = [json.loads(line) for line in open(os.path.join(plain, "questions.jsonl"))]
    assert len(plain_questions) == 800 and plain_questions[:20] == questions[:20]
