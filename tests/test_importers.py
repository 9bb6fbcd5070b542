"""The VQAv2, CLEVR v1.0 and COCO-captions importers on small fixture files
written in the published schemas (tests/fixtures/), and their bad inputs."""

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from simmim_tf.cli import main
from simmim_tf.data.folder_validation import validate_folder
from simmim_tf.data.vqa_dataset import load_split, read_captions
from simmim_tf.errors import SimMIMInputError

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


def _images(folder, names, mode="RGB", size=(64, 48)):
    os.makedirs(folder, exist_ok=True)
    for i, name in enumerate(names):
        Image.new(mode, size, (40 * i, 100, 200) + ((255,) if mode == "RGBA" else ())).save(
            os.path.join(folder, name)
        )
    return folder


@pytest.fixture
def coco_images(tmp_path):
    names = ["COCO_val2014_000000000042.jpg", "COCO_val2014_000000000073.jpg"]
    return _images(str(tmp_path / "val2014"), names)


def _vqav2(tmp_path, images, out, *extra):
    return main(
        [
            "data",
            "import-vqav2",
            "--questions",
            os.path.join(FIXTURES, "v2_OpenEnded_mscoco_val2014_questions.json"),
            "--annotations",
            os.path.join(FIXTURES, "v2_mscoco_val2014_annotations.json"),
            "--images",
            images,
            "--out",
            out,
            "--split",
            "test",
            "--image-size",
            "32",
            *extra,
        ]
    )


def test_vqav2(tmp_path, coco_images):
    out = str(tmp_path / "vqa")
    assert _vqav2(tmp_path, coco_images, out) == 0
    records = [json.loads(x) for x in open(os.path.join(out, "questions.jsonl"))]
    assert [r["question_id"] for r in records] == [420, 421, 730]
    umbrella = records[0]
    assert umbrella["image"] == "images/COCO_val2014_000000000042.png"
    assert umbrella["answer"] == "red" and len(umbrella["answers"]) == 10
    assert [r["family"] for r in records] == ["other", "number", "yes_no"]
    assert records[1]["subtype"] == "how many" and records[0]["split"] == "test"
    assert validate_folder(out)[0] == []
    questions = load_split(out, "test")
    assert questions.images.shape == (2, 32, 32, 3)
    # "red": 6 humans say "red", 1 "Red" -> 7 after normalisation: full credit.
    # "two" for the count: "2" x7 and "two" -> 8: full credit.
    # "no" for rain: 2 humans -> leaving one "no" out: 1/3 (2 subsets), else 2/3 (8).
    from simmim_tf.evaluation import accuracy_by_family

    result = accuracy_by_family(
        ["red", "two", "no"], questions.answers, questions.families, questions.human_answers
    )
    assert result["other"]["vqa_accuracy"] == pytest.approx(1.0)
    assert result["number"]["vqa_accuracy"] == pytest.approx(1.0)
    assert result["number"]["accuracy"] == 0.0  # exact match does not normalise "two"
    assert result["yes_no"]["vqa_accuracy"] == pytest.approx((2 * 1 / 3 + 8 * 2 / 3) / 10)


def test_vqav2_missing_image_and_bad_annotation(tmp_path, coco_images, capsys):
    os.remove(os.path.join(coco_images, "COCO_val2014_000000000073.jpg"))
    out = str(tmp_path / "vqa")
    assert _vqav2(tmp_path, coco_images, out) == 2
    err = capsys.readouterr().err
    assert "v2_OpenEnded_mscoco_val2014_questions.json: questions[2]: image not found" in err
    assert _vqav2(tmp_path, coco_images, out, "--skip-bad-records") == 0
    assert "wrote 2 questions" in capsys.readouterr().out
    # An annotation without its answers is named by its index.
    annotations = json.load(open(os.path.join(FIXTURES, "v2_mscoco_val2014_annotations.json")))
    del annotations["annotations"][1]["answers"]
    broken = tmp_path / "annotations.json"
    broken.write_text(json.dumps(annotations))
    from simmim_tf.data.vqav2_import import import_vqav2

    with pytest.raises(SimMIMInputError, match=r"annotations\[1\]: missing field\(s\) answers"):
        import_vqav2(
            os.path.join(FIXTURES, "v2_OpenEnded_mscoco_val2014_questions.json"),
            str(broken),
            coco_images,
            str(tmp_path / "other"),
            "test",
        )


def test_clevr(tmp_path):
    images = _images(
        str(tmp_path / "images" / "val"),
        ["CLEVR_val_000000.png", "CLEVR_val_000001.png"],
        mode="RGBA",
        size=(480, 320),
    )
    out = str(tmp_path / "clevr")
    questions = os.path.join(FIXTURES, "CLEVR_val_questions.json")
    args = ["data", "import-clevr", "--questions", questions, "--images", images, "--out", out]
    assert main(args + ["--split", "train", "--image-size", "64"]) == 0
    records = [json.loads(x) for x in open(os.path.join(out, "questions.jsonl"))]
    assert [(r["family"], r["subtype"], r["answer"]) for r in records] == [
        ("count", "count", "3"),
        ("query_attribute", "query_material", "rubber"),
        ("exist", "exist", "yes"),
        ("compare_integer", "greater_than", "no"),
    ]
    image = np.asarray(Image.open(os.path.join(out, "images", "CLEVR_val_000001.png")))
    assert image.shape == (64, 64, 3)  # RGBA 480x320 -> RGB square
    # A second split goes into the same folder; the first is kept.
    assert main(args + ["--split", "test", "--image-size", "64"]) == 0
    assert len(load_split(out, "train")) == len(load_split(out, "test")) == 4
    # CLEVR's test questions have no answers: a clear refusal.
    document = json.load(open(questions))
    for q in document["questions"]:
        del q["answer"]
    unanswered = tmp_path / "CLEVR_test_questions.json"
    unanswered.write_text(json.dumps(document))
    assert main(args[:3] + [str(unanswered)] + args[4:] + ["--split", "x"]) == 2


def test_coco_captions(tmp_path, coco_images):
    out = str(tmp_path / "coco")
    captions = os.path.join(FIXTURES, "captions_val2014.json")
    args = ["data", "import-coco-captions", "--captions", captions, "--images", coco_images]
    assert main(args + ["--out", out, "--split", "val", "--image-size", "32"]) == 0
    got = read_captions(out)
    assert got == {
        "images/COCO_val2014_000000000042.png": [
            "Two people walk under a red umbrella.",
            "A couple sharing an umbrella on a street",
        ],
        "images/COCO_val2014_000000000073.png": ["A wet street in the rain."],
    }
    shutil.rmtree(out)
    broken = json.load(open(captions))
    broken["annotations"][2]["image_id"] = 99
    path = tmp_path / "captions.json"
    path.write_text(json.dumps(broken))
    args[3] = str(path)
    assert main(args + ["--out", out, "--split", "val"]) == 2
