"""Each bad input of a data folder: `validate` names file, line and problem;
training refuses with the same message, or skips and counts with
skip_bad_records. Nothing is dropped silently."""

import json
import os
import shutil

import pytest

from simmim_tf.cli import main
from simmim_tf.data import sort_of_clevr
from simmim_tf.data.bad_records import BadRecords
from simmim_tf.data.folder_validation import validate_folder
from simmim_tf.data.vqa_dataset import load_split
from simmim_tf.errors import SimMIMInputError
from simmim_tf.preprocessing.answer_vocabulary import AnswerVocabulary


@pytest.fixture(scope="module")
def clean_folder(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("clean"))
    sort_of_clevr.generate(out, num_images=12, seed=5, num_test=2, progress=False)
    return out


@pytest.fixture
def folder(clean_folder, tmp_path):
    out = str(tmp_path / "data")
    shutil.copytree(clean_folder, out)
    return out


def _lines(folder):
    return open(os.path.join(folder, "questions.jsonl")).read().splitlines()


def _write_lines(folder, lines):
    with open(os.path.join(folder, "questions.jsonl"), "w") as f:
        f.write("\n".join(lines) + "\n")


def _break_line(folder, line_no, change):
    """Applies `change` to the record on line `line_no` (1-based); returns its image."""
    lines = _lines(folder)
    record = json.loads(lines[line_no - 1])
    lines[line_no - 1] = change(record)
    _write_lines(folder, lines)
    return record["image"]


def _without(field):
    return lambda r: json.dumps({k: v for k, v in r.items() if k != field})


BREAKAGES = {
    "question without answer": (_without("answer"), r"questions.jsonl:3: missing field 'answer'"),
    "truncated JSON line": (
        lambda r: json.dumps(r)[:30],
        r"questions.jsonl:3: not valid JSON \(.*truncated line\?\)",
    ),
    "wrong schema": (
        lambda r: json.dumps({**r, "answer": 2}),
        r"questions.jsonl:3: field 'answer' must be a string, got 2",
    ),
    "path outside the folder": (
        lambda r: json.dumps({**r, "image": "../secret.png"}),
        r"questions.jsonl:3: image path '../secret.png' must be relative",
    ),
    "question with no words": (
        lambda r: json.dumps({**r, "question": "??"}),
        r"questions.jsonl:3: question '\?\?' has no words",
    ),
}


def test_a_clean_folder_is_valid(clean_folder):
    problems, counts = validate_folder(clean_folder)
    assert problems == []
    assert counts == {
        "questions (train)": 200,
        "questions (test)": 40,
        "scenes": 12,
        "images": 12,
    }


@pytest.mark.parametrize("name", sorted(BREAKAGES))
def test_bad_record_is_named_by_validate_and_load(folder, name):
    change, message = BREAKAGES[name]
    _break_line(folder, 3, change)
    problems, _ = validate_folder(folder)
    assert len(problems) == 1 and __import__("re").search(message, problems[0]), problems
    with pytest.raises(SimMIMInputError, match=message):
        load_split(folder, "train")
    # Skipping leaves out exactly that one record and counts it.
    bad = BadRecords(skip=True)
    assert len(load_split(folder, "train", bad=bad)) == 199 and len(bad) == 1


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_missing_or_corrupt_image(folder, damage):
    image = os.path.join(folder, "images", "000004.png")
    if damage == "missing":
        os.remove(image)
    else:
        open(image, "wb").write(b"\x89PNG\r\n\x1a\n truncated")
    expected = "image not found" if damage == "missing" else "not a readable PNG or JPEG"
    problems, _ = validate_folder(folder)
    # One problem per image, named at the first question that uses it.
    assert len(problems) == 1 and "questions.jsonl:81: " in problems[0], problems
    assert expected in problems[0] and "000004.png" in problems[0]
    with pytest.raises(SimMIMInputError, match=f"questions.jsonl:81: .*{expected}"):
        load_split(folder, "train")
    bad = BadRecords(skip=True)
    kept = load_split(folder, "train", bad=bad)
    assert len(kept) == 180 and "(20 question(s) use it)" in bad.messages[0]


def test_answer_outside_a_runs_vocabulary(folder):
    vocabulary = AnswerVocabulary(["yes", "no", "square", "circle", "1", "2", "3", "4", "5"])
    _break_line(folder, 7, lambda r: json.dumps({**r, "answer": "6"}))
    problems, _ = validate_folder(folder, vocabulary)
    assert problems == [
        f"{folder}/questions.jsonl:7: answer '6' is not in the answer vocabulary (9 answers)"
    ]


def test_validate_command_exits_non_zero_and_lists_problems(folder, capsys):
    assert main(["data", "validate", "--data", folder]) == 0
    assert "valid" in capsys.readouterr().out
    _break_line(folder, 2, _without("family"))
    _break_line(folder, 9, lambda r: "{")
    assert main(["data", "validate", "--data", folder]) == 2
    out, err = capsys.readouterr()
    assert "questions.jsonl:2: missing field 'family'" in out
    assert "questions.jsonl:9: not valid JSON" in out
    assert "2 problem(s) found" in err


def test_training_refuses_or_skips_and_counts(folder, tmp_path, capsys):
    from simmim_tf.training.run_config import RunConfig
    from simmim_tf.training.training_data import training_data

    _break_line(folder, 5, _without("answer"))
    run = str(tmp_path / "run")
    args = ["train", "--data", folder, "--out", run, "--epochs", "1", "--batch-size", "64"]
    assert main(args) == 2
    assert "questions.jsonl:5: missing field 'answer'" in capsys.readouterr().err
    assert not os.path.exists(os.path.join(run, "task.json"))

    # Skipping, with max_answers=3: answers outside the top 3 are bad records too.
    # (tests/test_training_options.py trains with skipping and checks the report.)
    bad = BadRecords(skip=True)
    config = RunConfig(data=folder, max_answers=3, skip_bad_records=True)
    data = training_data(config.data_section(), bad)
    answers, num_questions = data.answers, data.num_questions
    assert len(answers) == 3
    assert bad.messages[0].endswith("questions.jsonl:5: missing field 'answer'")
    outside = [m for m in bad.messages if "is not among the 3 most frequent answers" in m]
    train_answers = [json.loads(x).get("answer") for x in _lines(folder) if '"train"' in x]
    train_answers = [a for a in train_answers if a is not None]
    assert len(outside) == sum(a not in answers for a in train_answers) > 0
    assert num_questions == len(train_answers) - len(outside)
