"""Reading a question folder (`questions.jsonl` + `images/`) into arrays.

Every record is checked against `record_schema`; a bad one goes to a
`BadRecords`, which raises `SimMIMInputError` naming the file, the line and
what is wrong, or, when asked to skip, counts it. Nothing is dropped silently.
"""

import collections
import dataclasses
import json
import os

import numpy as np

from simmim_tf.data.bad_records import BadRecords
from simmim_tf.data.record_schema import (
    CAPTION_SCHEMA,
    QUESTION_SCHEMA,
    SCENE_SCHEMA,
    record_problems,
)
from simmim_tf.errors import SimMIMInputError
from simmim_tf.preprocessing.image_loading import load_image
from simmim_tf.preprocessing.question_tokenizer import split_words


@dataclasses.dataclass
class QuestionSet:
    """The questions of one split, with each image stored once.

    images: uint8 (num_images, H, W, 3); image_index: int32 (num_questions,)
    pointing into `images`; questions, answers, families: lists of str;
    sources: "questions.jsonl:LINE" of each question, for error messages;
    human_answers: VQAv2's ten answers of each question, or None;
    question_types: each record's "subtype" (closest, count, ...), or its
    family where it has none.
    """

    images: np.ndarray
    image_paths: list
    image_index: np.ndarray
    questions: list
    answers: list
    families: list
    sources: list = dataclasses.field(default_factory=list)
    human_answers: list | None = None
    question_types: list = dataclasses.field(default_factory=list)

    def __len__(self):
        return len(self.questions)

    def subset(self, keep):
        """The questions where `keep` (bool per question) is true; images unchanged."""
        keep = np.asarray(keep, bool)
        pick = lambda xs: [x for x, k in zip(xs, keep, strict=True) if k]  # noqa: E731
        return dataclasses.replace(
            self,
            image_index=self.image_index[keep],
            questions=pick(self.questions),
            answers=pick(self.answers),
            families=pick(self.families),
            sources=pick(self.sources),
            human_answers=pick(self.human_answers) if self.human_answers else None,
            question_types=pick(self.question_types) if self.question_types else [],
        )


def json_records(path, what, bad=None):
    """(line number, dict) for each valid JSON object line of a JSON-lines file.

    A line that is not valid UTF-8 JSON (a truncated write, say) or not an
    object goes to `bad`; blank lines are ignored.
    """
    bad = bad if bad is not None else BadRecords()
    if not os.path.isfile(path):
        raise SimMIMInputError(f"{path}: not found ({what})")
    with open(path, "rb") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line.decode("utf-8"))
            except UnicodeDecodeError:
                bad(f"{path}:{line_no}: not UTF-8 text")
                continue
            except json.JSONDecodeError as e:
                bad(f"{path}:{line_no}: not valid JSON ({e.msg}; truncated line?)")
                continue
            if not isinstance(record, dict):
                bad(f"{path}:{line_no}: expected a JSON object")
                continue
            yield line_no, record


def read_questions(data_dir, bad=None, schema=QUESTION_SCHEMA):
    """All valid records of `questions.jsonl`, each with "_where" ("file:line: ").
    `schema`: QUESTION_SCHEMA (a question about an image) or a clip folder's."""
    bad = bad if bad is not None else BadRecords()
    path = os.path.join(data_dir, "questions.jsonl")
    records = []
    for line_no, record in json_records(path, f"is {data_dir} a simmim_tf data folder?", bad):
        problems = record_problems(record, schema)
        if not problems and not split_words(record["question"]):
            problems = [f"question {record['question']!r} has no words"]
        if problems:
            bad(f"{path}:{line_no}: " + "; ".join(problems))
            continue
        record["_where"] = f"{path}:{line_no}: "
        records.append(record)
    if not records:
        raise SimMIMInputError(f"{path}: holds no valid questions")
    return records


def load_split(data_dir, split, image_size=None, bad=None):
    """The questions of `split` ("train" or "test") with their decoded images.

    A missing or unreadable image is one bad record (naming the first question
    that uses it); when skipping, all its questions are left out and counted.
    """
    bad = bad if bad is not None else BadRecords()
    records = [r for r in read_questions(data_dir, bad) if r["split"] == split]
    if not records:
        raise SimMIMInputError(f"{data_dir}: no questions in split {split!r}")
    images, paths, records, image_index = read_record_images(
        data_dir, records, image_size, bad, "question", split
    )
    return QuestionSet(
        images=images,
        image_paths=paths,
        image_index=image_index,
        questions=[r["question"] for r in records],
        answers=[r["answer"] for r in records],
        families=[r["family"] for r in records],
        sources=[r["_where"].rstrip(": ") for r in records],
        human_answers=[r.get("answers") for r in records],
        question_types=[r.get("subtype") or r["family"] for r in records],
    )


def read_record_images(data_dir, records, image_size, bad, noun, split):
    """The images `records` (of `split`) use, each read once, sorted by path:
    (uint8 (n, H, W, 3), paths, the records whose image was readable, and
    each such record's index into the images).

    A missing or unreadable image is one bad record (naming the first
    record that uses it); when skipping, all its records are left out and
    counted. Images of different sizes without `image_size` are an error.
    """
    first_use = {}
    for r in records:
        first_use.setdefault(r["image"], r)
    images, paths = [], []
    for path, r in sorted(first_use.items()):
        try:
            images.append(load_image(os.path.join(data_dir, path), image_size))
            paths.append(path)
        except SimMIMInputError as e:
            uses = sum(q["image"] == path for q in records)
            bad(f"{r['_where']}{e} ({uses} {noun}(s) use it)", left_out=uses)
    readable = set(paths)
    records = [r for r in records if r["image"] in readable]
    if not records:
        raise SimMIMInputError(f"{data_dir}: no readable {noun}s in split {split!r}")
    sizes = {image.shape for image in images}
    if len(sizes) > 1:
        odd = next(i for i, im in enumerate(images) if im.shape != images[0].shape)
        raise SimMIMInputError(
            f"{data_dir}: images differ in size ({paths[0]} is {images[0].shape[:2]}, "
            f"{paths[odd]} is {images[odd].shape[:2]}); resize them, or pass image_size"
        )
    position = {p: i for i, p in enumerate(paths)}
    image_index = np.array([position[r["image"]] for r in records], np.int32)
    return np.stack(images), paths, records, image_index


def read_scenes(data_dir, bad=None):
    """{image path: list of objects} from `scenes.jsonl`, for analysis and plots."""
    bad = bad if bad is not None else BadRecords()
    path = os.path.join(data_dir, "scenes.jsonl")
    scenes = {}
    for line_no, record in json_records(path, "only generated data sets have scenes", bad):
        problems = record_problems(record, SCENE_SCHEMA)
        if problems:
            bad(f"{path}:{line_no}: " + "; ".join(problems))
            continue
        scenes[record["image"]] = record["objects"]
    return scenes


def read_captions(data_dir, bad=None):
    """{image path: [captions]} from `captions.jsonl`."""
    bad = bad if bad is not None else BadRecords()
    path = os.path.join(data_dir, "captions.jsonl")
    captions = collections.defaultdict(list)
    for line_no, record in json_records(path, "no captions in this data folder", bad):
        problems = record_problems(record, CAPTION_SCHEMA)
        if problems:
            bad(f"{path}:{line_no}: " + "; ".join(problems))
            continue
        captions[record["image"]].append(record["caption"])
    return dict(captions)
