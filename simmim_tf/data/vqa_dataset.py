"""Reading a question folder (`questions.jsonl` + `images/`) into arrays.

Every record is checked; a bad one raises `SimMIMInputError` naming the file,
the line and what is wrong. Nothing is skipped silently.
"""

import dataclasses
import json
import os

import numpy as np

from simmim_tf.errors import SimMIMInputError
from simmim_tf.preprocessing.image_loading import load_image

REQUIRED_FIELDS = ("image", "question", "answer", "family", "split")


@dataclasses.dataclass
class QuestionSet:
    """The questions of one split, with each image stored once.

    images: uint8 (num_images, H, W, 3); image_index: int32 (num_questions,)
    pointing into `images`; questions, answers, families: lists of str.
    """

    images: np.ndarray
    image_paths: list
    image_index: np.ndarray
    questions: list
    answers: list
    families: list

    def __len__(self):
        return len(self.questions)


def _json_objects(path, what):
    """(line number, dict) for each non-blank line of a JSON-lines file."""
    if not os.path.isfile(path):
        raise SimMIMInputError(f"{path}: not found ({what})")
    with open(path) as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise SimMIMInputError(f"{path}:{line_no}: not valid JSON ({e.msg})") from None
            if not isinstance(record, dict):
                raise SimMIMInputError(f"{path}:{line_no}: expected a JSON object")
            yield line_no, record


def read_questions(data_dir):
    """All records of `questions.jsonl`, validated, each with its line number."""
    path = os.path.join(data_dir, "questions.jsonl")
    records = []
    for line_no, record in _json_objects(path, f"is {data_dir} a simmim_tf data folder?"):
        missing = [k for k in REQUIRED_FIELDS if not isinstance(record.get(k), str)]
        if missing:
            raise SimMIMInputError(
                f"{path}:{line_no}: missing or non-string field(s) {', '.join(missing)}"
            )
        record["_where"] = f"{path}:{line_no}: "
        records.append(record)
    if not records:
        raise SimMIMInputError(f"{path}: holds no questions")
    return records


def load_split(data_dir, split, image_size=None):
    """The questions of `split` ("train" or "test") with their decoded images."""
    records = [r for r in read_questions(data_dir) if r["split"] == split]
    if not records:
        raise SimMIMInputError(f"{data_dir}: no questions in split {split!r}")
    paths = sorted({r["image"] for r in records})
    position = {p: i for i, p in enumerate(paths)}
    images = np.stack([load_image(os.path.join(data_dir, p), image_size) for p in paths])
    return QuestionSet(
        images=images,
        image_paths=paths,
        image_index=np.array([position[r["image"]] for r in records], np.int32),
        questions=[r["question"] for r in records],
        answers=[r["answer"] for r in records],
        families=[r["family"] for r in records],
    )


def read_scenes(data_dir):
    """{image path: list of objects} from `scenes.jsonl`, for analysis and plots."""
    path = os.path.join(data_dir, "scenes.jsonl")
    scenes = {}
    for line_no, record in _json_objects(path, "only generated data sets have scenes"):
        if not isinstance(record.get("image"), str) or not isinstance(record.get("objects"), list):
            raise SimMIMInputError(
                f"{path}:{line_no}: expected 'image' (string) and 'objects' (list)"
            )
        scenes[record["image"]] = record["objects"]
    return scenes
