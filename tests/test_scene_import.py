"""Object annotations of public data sets into scenes.jsonl: CLEVR v1.0's
scene graphs (`data import-clevr --scenes`) and COCO's instances (`data
import-vqav2 --instances`), on fixtures this file writes in the official
formats; and the anchor target finding the object a question names by the
data set's own words."""

import itertools
import json
import os

import numpy as np
import pytest
from PIL import Image

from simmim_tf.cli import main
from simmim_tf.data.anchor_targets import anchor_targets, attribute_vocabulary, named_object
from simmim_tf.data.vqa_dataset import load_split, read_scenes

CLEVR_VALUES = {
    "color": ["gray", "red", "blue", "green", "brown", "purple", "cyan", "yellow"],
    "shape": ["cube", "sphere", "cylinder"],
    "size": ["large", "small"],
    "material": ["rubber", "metal"],
}
# The words CLEVR's question templates use for each value.
CLEVR_WORDS = {
    "cube": ["cube", "block"],
    "sphere": ["sphere", "ball"],
    "cylinder": ["cylinder"],
    "large": ["large", "big"],
    "small": ["small", "tiny"],
    "metal": ["metal", "metallic", "shiny"],
    "rubber": ["rubber", "matte"],
}


def _clevr_scene(rng, index):
    objects = []
    for _ in range(rng.integers(3, 8)):
        depth = rng.uniform(8, 14)
        objects.append(
            {
                **{a: str(rng.choice(v)) for a, v in CLEVR_VALUES.items()},
                "rotation": float(rng.uniform(0, 360)),
                "3d_coords": [float(c) for c in rng.uniform(-3, 3, 3)],
                "pixel_coords": [int(rng.integers(40, 440)), int(rng.integers(60, 260)), depth],
            }
        )
    return {
        "split": "val",
        "image_index": index,
        "image_filename": f"CLEVR_val_{index:06d}.png",
        "objects": objects,
        "relationships": {},
        "directions": {},
    }


def _description(rng, scene, target):
    """Words that name `target` alone in `scene` (CLEVR's attribute order:
    size, colour, material, shape), or None."""
    attributes = ("size", "color", "material", "shape")
    for k in range(1, 5):
        for chosen in itertools.combinations(attributes, k):
            matches = [o for o in scene if all(o[a] == target[a] for a in chosen)]
            if len(matches) == 1:
                words = [str(rng.choice(CLEVR_WORDS.get(target[a], [target[a]]))) for a in chosen]
                if "shape" not in chosen:
                    words.append(str(rng.choice(["thing", "object"])))
                return " ".join(words)
    return None


def _clevr_fixture(root, num_images=12, seed=0):
    """CLEVR_val_questions.json, CLEVR_val_scenes.json and 480×320 RGBA
    images in CLEVR v1.0's layout. Returns (files, [(question index, scene
    index, object index or None)])."""
    rng = np.random.default_rng(seed)
    scenes = [_clevr_scene(rng, i) for i in range(num_images)]
    questions, truth = [], []
    templates = [
        ("What color is the {}?", "query_color"),
        ("What is the {} made of?", "query_material"),
        ("Are there any other things that are the same size as the {}?", "exist"),
        ("How many things are the same shape as the {}?", "count"),
    ]
    for s, scene in enumerate(scenes):
        for o, obj in enumerate(scene["objects"]):
            description = _description(rng, scene["objects"], obj)
            if description is None:
                continue
            template, function = templates[int(rng.integers(len(templates)))]
            questions.append((template.format(description), function))
            truth.append((len(questions) - 1, s, o))
        plural = str(rng.choice(["cubes", "balls", "cylinders", "things"]))
        questions.append((f"How many {plural} are there?", "count"))
        truth.append((len(questions) - 1, s, None))
    images = os.path.join(root, "images", "val")
    os.makedirs(images)
    for scene in scenes:
        Image.new("RGBA", (480, 320), (128, 128, 128, 255)).save(
            os.path.join(images, scene["image_filename"])
        )
    document = {
        "info": {"split": "val", "version": "1.0"},
        "questions": [
            {
                "image_index": s,
                "image_filename": scenes[s]["image_filename"],
                "question_index": q,
                "question": text,
                "answer": "2",
                "program": [{"inputs": [], "function": "scene", "value_inputs": []}]
                + [{"inputs": [0], "function": function, "value_inputs": []}],
                "split": "val",
            }
            for (q, s, _), (text, function) in zip(truth, questions, strict=True)
        ],
    }
    files = {
        "questions": os.path.join(root, "CLEVR_val_questions.json"),
        "scenes": os.path.join(root, "CLEVR_val_scenes.json"),
        "images": images,
    }
    with open(files["questions"], "w") as f:
        json.dump(document, f)
    with open(files["scenes"], "w") as f:
        json.dump({"info": {"split": "val"}, "scenes": scenes}, f)
    return files, scenes, truth


@pytest.fixture(scope="module")
def clevr(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("clevr_v1"))
    files, scenes, truth = _clevr_fixture(root)
    out = os.path.join(root, "data")
    args = ["data", "import-clevr", "--questions", files["questions"], "--images"]
    args += [files["images"], "--scenes", files["scenes"], "--out", out, "--split", "train"]
    assert main([*args, "--image-size", "96"]) == 0
    return out, scenes, truth


def test_every_clevr_object_reaches_scenes_jsonl(clevr):
    out, scenes, _ = clevr
    written = read_scenes(out)
    assert len(written) == len(scenes)
    for scene in scenes:
        objects = written[f"images/{scene['image_filename'][:-4]}.png"]
        assert len(objects) == len(scene["objects"])
        for mine, theirs in zip(objects, scene["objects"], strict=True):
            assert (mine["color"], mine["shape"], mine["material"], mine["size_name"]) == (
                theirs["color"],
                theirs["shape"],
                theirs["material"],
                theirs["size"],
            )
            # Centres move with the resize from 480×320 to 96×96.
            assert mine["x"] == pytest.approx(theirs["pixel_coords"][0] * 96 / 480)
            assert mine["y"] == pytest.approx(theirs["pixel_coords"][1] * 96 / 320)
            # Nearer and larger objects get larger boxes.
            assert 0 < mine["width"] < 96 and 0 < mine["height"] < 96
    large = [o["width"] for s in written.values() for o in s if o["size_name"] == "large"]
    small = [o["width"] for s in written.values() for o in s if o["size_name"] == "small"]
    assert np.mean(large) > 1.5 * np.mean(small)


def test_the_anchor_target_finds_the_named_clevr_object(clevr):
    out, scenes, truth = clevr
    split = load_split(out, "train")
    written = read_scenes(out)
    vocabulary = attribute_vocabulary(written.values())
    named = [t for t in truth if t[2] is not None]
    found = 0
    for q, _, o in truth:
        objects = written[split.image_paths[split.image_index[q]]]
        got = named_object(split.questions[q], objects, vocabulary=vocabulary)
        if o is None:
            assert got is None, split.questions[q]  # a plural names no one object
        elif got is objects[o]:
            found += 1
    assert len(named) >= 40
    print(f"found {found} of {len(named)} named objects")
    assert found / len(named) >= 0.95, f"found {found} of {len(named)} named objects"
    # The target marks the regions under the object's centre.
    targets = anchor_targets(out, split, (12, 12), 8)
    for q, _, o in named[:20]:
        obj = written[split.image_paths[split.image_index[q]]][o]
        assert targets[q, int(obj["y"] // 8) * 12 + int(obj["x"] // 8)] == 1


def _coco_fixture(root):
    """COCO's instances_val2014.json, VQAv2's questions and annotations
    files, and the images, for three images."""
    categories = [
        {"id": 1, "name": "person", "supercategory": "person"},
        {"id": 10, "name": "traffic light", "supercategory": "outdoor"},
        {"id": 18, "name": "dog", "supercategory": "animal"},
    ]
    sizes = {42: (640, 480), 73: (500, 375), 90: (427, 640)}
    boxes = [  # image id, category id, COCO bbox (x, y, width, height)
        (42, 1, [100.0, 50.0, 80.0, 200.0]),
        (42, 10, [400.0, 20.0, 30.0, 60.0]),
        (42, 18, [300.0, 300.0, 120.0, 90.0]),
        (73, 18, [10.0, 10.0, 100.0, 100.0]),
        (73, 18, [200.0, 150.0, 150.0, 120.0]),
        (90, 1, [50.0, 300.0, 200.0, 300.0]),
    ]
    images = os.path.join(root, "val2014")
    os.makedirs(images)
    for i, (w, h) in sizes.items():
        Image.new("RGB", (w, h), (10, 20, 30)).save(
            os.path.join(images, f"COCO_val2014_{i:012d}.jpg")
        )
    instances = {
        "images": [
            {"id": i, "file_name": f"COCO_val2014_{i:012d}.jpg", "width": w, "height": h}
            for i, (w, h) in sizes.items()
        ],
        "annotations": [
            {"id": n, "image_id": i, "category_id": c, "bbox": b, "area": b[2] * b[3], "iscrowd": 0}
            for n, (i, c, b) in enumerate(boxes)
        ],
        "categories": categories,
    }
    questions = [
        (42, "What is the man holding?", "umbrella"),
        (42, "Is the traffic light red?", "yes"),
        (73, "What color are the dogs?", "brown"),
        (73, "Is the dog sleeping?", "no"),
        (90, "What is the woman wearing?", "hat"),
    ]
    files = {k: os.path.join(root, f"{k}.json") for k in ("instances", "questions", "annotations")}
    documents = {
        "instances": instances,
        "questions": {
            "data_subtype": "val2014",
            "questions": [
                {"image_id": i, "question": q, "question_id": n}
                for n, (i, q, _) in enumerate(questions)
            ],
        },
        "annotations": {
            "annotations": [
                {
                    "question_id": n,
                    "image_id": i,
                    "question_type": "what",
                    "answer_type": "other",
                    "multiple_choice_answer": a,
                    "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": 1}] * 10,
                }
                for n, (i, _, a) in enumerate(questions)
            ]
        },
    }
    for name, document in documents.items():
        with open(files[name], "w") as f:
            json.dump(document, f)
    return files, images, sizes, boxes


def test_every_coco_box_reaches_scenes_jsonl_and_names_are_found(tmp_path):
    files, images, sizes, boxes = _coco_fixture(str(tmp_path))
    out = str(tmp_path / "data")
    args = ["data", "import-vqav2", "--questions", files["questions"], "--annotations"]
    args += [files["annotations"], "--instances", files["instances"], "--images", images]
    assert main([*args, "--out", out, "--split", "train", "--image-size", "64"]) == 0
    scenes = read_scenes(out)
    assert sum(len(objects) for objects in scenes.values()) == len(boxes)
    for image_id, (w, h) in sizes.items():
        objects = scenes[f"images/COCO_val2014_{image_id:012d}.png"]
        theirs = [b for i, _, b in boxes if i == image_id]
        for mine, (x, y, bw, bh) in zip(objects, theirs, strict=True):
            assert mine["x"] == pytest.approx((x + bw / 2) * 64 / w)
            assert mine["y"] == pytest.approx((y + bh / 2) * 64 / h)
            assert mine["width"] == pytest.approx(bw * 64 / w)
            assert mine["height"] == pytest.approx(bh * 64 / h)

    split = load_split(out, "train")
    vocabulary = attribute_vocabulary(scenes.values())
    named = {
        q: named_object(q, scenes[split.image_paths[i]], vocabulary=vocabulary)
        for q, i in zip(split.questions, split.image_index, strict=True)
    }
    category = {q: o and o["category"] for q, o in named.items()}
    assert category["What is the man holding?"] == "person"
    assert category["What is the woman wearing?"] == "person"
    assert category["Is the traffic light red?"] == "traffic light"  # two words
    assert category["What color are the dogs?"] is None  # a plural
    assert category["Is the dog sleeping?"] is None  # two dogs: not one object


def test_scenes_need_a_box(tmp_path):
    from simmim_tf.data import sort_of_clevr
    from simmim_tf.data.folder_validation import validate_folder

    out = str(tmp_path / "data")
    sort_of_clevr.generate(out, num_images=4, seed=0, progress=False)
    with open(os.path.join(out, "scenes.jsonl")) as f:
        lines = f.read().splitlines()
    scene = json.loads(lines[1])
    del scene["objects"][0]["size"]
    lines[1] = json.dumps(scene)
    with open(os.path.join(out, "scenes.jsonl"), "w") as f:
        f.write("\n".join(lines) + "\n")
    problems, _ = validate_folder(out)
    expected = "scenes.jsonl:2: objects[0]: needs 'size' or 'width' and 'height'"
    assert any(expected in p for p in problems), problems
