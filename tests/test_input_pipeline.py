"""The three input pipelines (memory, stream, tfrecord) yield the same
questions, images, ids and answers; training runs from TFRecord shards."""

import collections
import hashlib
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from simmim_tf.cli import main
from simmim_tf.data import sort_of_clevr
from simmim_tf.data.tfrecord_shards import shard_files, write_shards
from simmim_tf.data.vqa_dataset import load_split, read_questions
from simmim_tf.preprocessing.answer_vocabulary import AnswerVocabulary
from simmim_tf.preprocessing.question_tokenizer import QuestionTokenizer
from simmim_tf.training.input_pipeline import (
    images_from_folder,
    images_from_tfrecords,
    make_dataset,
    make_stream_dataset,
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("pipeline_data"))
    sort_of_clevr.generate(out, num_images=12, seed=2, num_test=2, progress=False)
    write_shards(out, "train", num_shards=3)
    return out


def _rows(dataset):
    """Multiset of (image digest, token ids, mask, answer id) over one epoch."""
    rows = collections.Counter()
    for x, y in dataset:
        assert x["images"].dtype == tf.uint8 and x["padding_mask"].dtype == tf.int32
        for image, ids, mask, answer in zip(
            x["images"].numpy(),
            x["token_ids"].numpy(),
            x["padding_mask"].numpy(),
            y.numpy(),
            strict=True,
        ):
            digest = hashlib.sha1(image.tobytes()).hexdigest()
            rows[(digest, tuple(ids), tuple(mask), int(answer))] += 1
    return rows


@pytest.mark.parametrize("shuffle", [False, True])
def test_pipelines_agree(folder, shuffle):
    train = load_split(folder, "train")
    records = [r for r in read_questions(folder) if r["split"] == "train"]
    tokenizer = QuestionTokenizer.fit(train.questions, 12)
    answers = AnswerVocabulary.fit(train.answers)
    ids, _ = tokenizer.encode_batch(train.questions)
    answer_ids = np.array([answers.id(a) for a in train.answers], np.int32)
    memory = _rows(make_dataset(train, ids, answer_ids, 32, shuffle))
    assert sum(memory.values()) == len(train) == 200
    stream = make_stream_dataset(
        images_from_folder(folder, records, answers, 75), tokenizer, 32, shuffle, cache=True
    )
    assert _rows(stream) == memory
    assert _rows(stream) == memory  # second epoch, from the cache
    tfrecord = images_from_tfrecords(shard_files(folder, "train"), answers, 75)
    assert _rows(make_stream_dataset(tfrecord, tokenizer, 32, shuffle)) == memory


def test_tfrecord_drops_answers_outside_the_vocabulary(folder):
    records = [r for r in read_questions(folder) if r["split"] == "train"]
    answers = AnswerVocabulary.fit([r["answer"] for r in records], max_answers=2)
    tokenizer = QuestionTokenizer.fit([r["question"] for r in records], 12)
    images = images_from_tfrecords(shard_files(folder, "train"), answers, 75)
    rows = _rows(make_stream_dataset(images, tokenizer, 64, False))
    assert sum(rows.values()) == sum(r["answer"] in answers for r in records)


def test_stream_resizes_other_sizes(tmp_path):
    (tmp_path / "images").mkdir()
    records = []
    for i, size in enumerate([(40, 40), (50, 30)]):
        Image.new("RGB", size, (200, 10 * i, 0)).save(tmp_path / "images" / f"{i}.jpg")
        records.append({"image": f"images/{i}.jpg", "question": "what colour?", "answer": "red"})
    answers = AnswerVocabulary.fit(["red"])
    tokenizer = QuestionTokenizer.fit(["what colour?"], 4)
    images = images_from_folder(str(tmp_path), records, answers, 32)
    ((x, y),) = make_stream_dataset(images, tokenizer, 8, False)
    assert x["images"].shape == (2, 32, 32, 3) and y.numpy().tolist() == [0, 0]
    assert abs(int(x["images"][0, 16, 16, 0]) - 200) <= 8  # a JPEG keeps the colour


def test_training_data_from_tfrecord_shards(tmp_path):
    from simmim_tf.data.bad_records import BadRecords
    from simmim_tf.training.run_config import RunConfig
    from simmim_tf.training.training_data import training_data

    data = str(tmp_path / "data")
    sort_of_clevr.generate(data, num_images=10, seed=6, num_test=1, progress=False)
    assert main(["data", "to-tfrecord", "--data", data, "--shards", "2"]) == 0
    assert len(shard_files(data, "train")) == len(shard_files(data, "test")) == 2
    config = RunConfig(data=data, batch_size=32, input_pipeline="tfrecord")
    training = training_data(config.data_section(), BadRecords())
    dataset = training.dataset
    assert (training.num_questions, training.image_size, training.validation) == (180, 75, None)
    assert training.steps_per_epoch == 6  # one question per example
    # The object targets travel with each example from the shards.
    assert training.attribute_sizes == [7, 3] and training.anchor_targets
    assert dataset.cardinality() == 6  # declared, so fit shows progress from epoch 1
    rows = 0
    for _, y in dataset:
        rows += int(y["answers"].shape[0])
        assert y["grounding"].shape[1:] == (100, 4) and y["anchor"].shape[1:] == (2, 100)
        assert float(tf.reduce_min(tf.reduce_sum(y["anchor"][:, 0], -1))) > 0  # every one named
    assert rows == 180
    # A missing image is named before training starts, as the memory pipeline names it.
    os.remove(os.path.join(data, "images", "000003.png"))
    run = str(tmp_path / "run")
    args = ["train", "--data", data, "--out", run, "--epochs", "1", "--input-pipeline", "stream"]
    assert main(args) == 2
