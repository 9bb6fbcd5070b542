"""What `train` needs of a data folder: the input pipelines of the training
split (and of its held-out validation share), the vocabularies, and sizes.

One function per input pipeline: `memory` (decoded once; image-grouped
batches on one replica) and `stream` / `tfrecord` (decoded in the graph
every epoch). Where the data has scenes, every pipeline carries each
example's object targets for the grounding and anchor losses
(`simmim_tf.data.object_targets`). It reads the run's data section only
(`run_config.DataSection`), never the whole run configuration.
"""

import collections
import dataclasses
import os

import numpy as np
import tensorflow as tf

from simmim_tf.data.object_targets import object_targets, question_key
from simmim_tf.data.tfrecord_shards import shard_files
from simmim_tf.data.vqa_dataset import load_split, read_questions
from simmim_tf.errors import SimMIMInputError
from simmim_tf.preprocessing.answer_vocabulary import AnswerVocabulary
from simmim_tf.preprocessing.image_loading import image_header_problem, load_image
from simmim_tf.preprocessing.question_tokenizer import QuestionTokenizer
from simmim_tf.training.image_grouped_batches import image_grouped_batches
from simmim_tf.training.image_grouped_batches import steps_per_epoch as grouped_steps_per_epoch
from simmim_tf.training.input_pipeline import (
    images_from_folder,
    images_from_tfrecords,
    make_dataset,
    make_stream_dataset,
)


def _encode_answers(vocab, answers):
    return np.array([vocab.id(a) for a in answers], np.int32)


@dataclasses.dataclass
class TrainingData:
    """What `train` needs of the data: pipelines, vocabularies, sizes."""

    dataset: tf.data.Dataset | None
    validation: tf.data.Dataset | None
    tokenizer: QuestionTokenizer
    answers: AnswerVocabulary
    image_size: int
    num_questions: int
    steps_per_epoch: int
    attribute_sizes: list | None = None  # grounding loss: classes per object attribute
    anchor_targets: bool = False  # whether the batches carry anchor targets
    object_losses: str = ""  # which losses train and why, for `train` to print


def training_data(section, bad, grouped=False):
    """`TrainingData` of the training split, from the run's `DataSection`.

    Bad records go to `bad`; so do answers outside the top `max_answers`.
    With `grouped` (memory pipeline only), image-grouped batches for
    `SimMIMVQATraining`. Every pipeline carries each example's object
    targets (a dict of targets) when the data has scenes and the grounding
    or anchor loss is on.
    """
    if section.questions_per_image < 1:
        raise SimMIMInputError(
            f"questions_per_image must be at least 1, got {section.questions_per_image}"
        )
    if section.input_pipeline == "memory":
        train_set = load_split(section.folder, "train", bad=bad)
        records = [
            {"image": train_set.image_paths[i], "question": q, "answer": a, "_where": w + ": "}
            for i, q, a, w in zip(
                train_set.image_index,
                train_set.questions,
                train_set.answers,
                train_set.sources,
                strict=True,
            )
        ]
        image_size = train_set.images.shape[1]
        if train_set.images.shape[2] != image_size:
            raise SimMIMInputError(
                f"{section.folder}: images must be square; got {train_set.images.shape[1:3]}"
            )
    elif section.input_pipeline in ("stream", "tfrecord"):
        records = [r for r in read_questions(section.folder, bad) if r["split"] == "train"]
        records = _with_readable_images(section.folder, records, bad)
        image_size = load_image(os.path.join(section.folder, records[0]["image"])).shape[0]
    else:
        raise SimMIMInputError(
            f"input_pipeline must be memory, stream or tfrecord; got {section.input_pipeline!r}"
        )
    answers = AnswerVocabulary.fit([r["answer"] for r in records], section.max_answers)
    known = [r["answer"] in answers for r in records]
    for r, ok in zip(records, known, strict=True):
        if not ok:
            bad(
                f"{r['_where']}answer {r['answer']!r} is not among the {len(answers)} most "
                "frequent answers (max_answers)"
            )
    records = [r for r, ok in zip(records, known, strict=True) if ok]
    held_out = _held_out_images(records, section.validation_fraction, section.seed)
    tokenizer = QuestionTokenizer.fit(
        [r["question"] for r in records if r["image"] not in held_out], section.max_sequence_length
    )
    num_train = sum(r["image"] not in held_out for r in records)
    data = TrainingData(
        None, None, tokenizer, answers, image_size, num_train, -(-num_train // section.batch_size)
    )
    if section.input_pipeline == "memory":
        _memory_pipelines(data, section, train_set.subset(known), held_out, grouped)
    else:
        _streaming_pipelines(data, section, records, held_out)
    return data


def _object_targets(data, section, records):
    """The run's `ObjectTargets` of `records`, or None where no object loss
    is on; sets `data.attribute_sizes`, `data.anchor_targets` and
    `data.object_losses` (the line `train` prints)."""
    wanted = ["grounding"] * section.grounding + ["anchor"] * bool(section.num_anchors)
    if wanted and not has_scenes(section.folder):
        data.object_losses = (
            f"losses: answers only (no scenes.jsonl in {section.folder}: "
            f"{' and '.join(wanted)} off)"
        )
        return None
    data.object_losses = "losses: " + ", ".join(["answers", *wanted])
    data.object_losses += " (objects from scenes.jsonl)" if wanted else ""
    data.object_losses += "".join(f"; {r}" for r in section.losses_off)
    if not wanted:
        return None
    grid = (-(-data.image_size // section.patch_size),) * 2
    targets = object_targets(
        section.folder,
        records,
        grid,
        section.patch_size,
        grounding=section.grounding,
        num_anchors=section.num_anchors,
    )
    data.attribute_sizes = targets.attribute_sizes
    data.anchor_targets = targets.anchors is not None
    return targets


def _records_of(question_set):
    return [
        {"image": question_set.image_paths[i], "question": q}
        for i, q in zip(question_set.image_index, question_set.questions, strict=True)
    ]


def _memory_pipelines(data, section, train_set, held_out, grouped):
    """Sets `data.dataset` (and `data.validation`) from decoded images in memory."""
    is_held_out = np.array([train_set.image_paths[i] in held_out for i in train_set.image_index])
    masks = [np.logical_not(is_held_out), is_held_out]
    parts = [train_set.subset(mask) for mask in masks]
    targets = _object_targets(data, section, _records_of(train_set))
    datasets = [None, None]
    for n, (part, shuffle) in enumerate(zip(parts, (True, False), strict=True)):
        if not len(part):  # no validation share
            continue
        token_ids, _ = data.tokenizer.encode_batch(part.questions)
        answer_ids = _encode_answers(data.answers, part.answers)
        if not grouped:
            datasets[n] = make_dataset(
                part, token_ids, answer_ids, section.batch_size, shuffle, section.seed, targets
            )
            continue
        # Validation keeps one question per image group: it only measures.
        per_image = section.questions_per_image if shuffle else 1
        datasets[n] = image_grouped_batches(
            part,
            token_ids,
            answer_ids,
            section.batch_size,
            per_image,
            targets.regions if targets is not None else None,
            section.seed,
            anchor_targets=_anchor_rows(targets, part),
        )
        if shuffle:
            data.steps_per_epoch = grouped_steps_per_epoch(part, section.batch_size, per_image)
    data.dataset = datasets[0]
    data.validation = datasets[1] if held_out else None


def _anchor_rows(targets, question_set):
    """The anchor targets of each question of `question_set`, in its order, or None."""
    if targets is None or targets.anchors is None:
        return None
    row = {k: i for i, k in enumerate(targets.question_keys)}
    keys = [question_key(r["image"], r["question"]) for r in _records_of(question_set)]
    return targets.anchors[[row[k] for k in keys]]


def _streaming_pipelines(data, section, records, held_out):
    """Sets `data.dataset` (and `data.validation`) from image files decoded in the graph."""
    if section.input_pipeline == "tfrecord" and held_out:
        raise SimMIMInputError(
            "validation_fraction needs the memory or stream pipeline (TFRecord shards "
            "hold whole splits); put a validation split in its own shards instead"
        )
    targets = _object_targets(data, section, records)
    datasets = [None, None]
    for n, (part, shuffle) in enumerate(
        (
            ([r for r in records if r["image"] not in held_out], True),
            ([r for r in records if r["image"] in held_out], False),
        )
    ):
        if not part:  # no validation share
            continue
        if section.input_pipeline == "stream":
            images = images_from_folder(section.folder, part, data.answers, data.image_size)
        else:  # answers outside the vocabulary were reported above; the pipeline drops them
            images = images_from_tfrecords(
                shard_files(section.folder, "train"), data.answers, data.image_size
            )
        datasets[n] = make_stream_dataset(
            images,
            data.tokenizer,
            section.batch_size,
            shuffle,
            section.seed,
            num_questions=len(part),
            object_targets=targets,
        )
    data.dataset = datasets[0]
    data.validation = datasets[1] if held_out else None


def has_scenes(data_dir):
    """Whether a data folder has object annotations (the generators write them)."""
    return os.path.isfile(os.path.join(data_dir, "scenes.jsonl"))


def _held_out_images(records, fraction, seed):
    """A `fraction` of the images, drawn with the run's seed, for validation."""
    if not fraction:
        return set()
    if not 0 < fraction < 1:
        raise SimMIMInputError(f"validation_fraction must be in [0, 1); got {fraction}")
    images = sorted({r["image"] for r in records})
    count = max(1, int(round(fraction * len(images))))
    chosen = np.random.default_rng(seed).choice(len(images), count, replace=False)
    return {images[i] for i in chosen}


def _with_readable_images(data_dir, records, bad):
    """Records whose image file exists and has a PNG or JPEG header (not decoded)."""
    status = {}
    uses = collections.Counter(r["image"] for r in records)
    for r in records:
        if r["image"] not in status:
            path = os.path.join(data_dir, r["image"])
            status[r["image"]] = image_header_problem(path)
            if status[r["image"]]:
                n = uses[r["image"]]
                bad(f"{r['_where']}{status[r['image']]} ({n} question(s) use it)", left_out=n)
    return [r for r in records if not status[r["image"]]]
