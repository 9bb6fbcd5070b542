"""TFRecord shards of a data folder, for sets read faster in large files.

`simmim-tf data to-tfrecord` writes, for each split,
    DATA/tfrecords/<split>-00000-of-00008.tfrecord ...
with one tf.train.Example per image:
    image      bytes      the PNG or JPEG file as it is on disk
    path       bytes      its path in the folder (images/000001.png)
    questions  bytes list its questions, in questions.jsonl order
    answers    bytes list their answers
questions.jsonl stays the reference (vocabularies, validation, families);
the shards carry what the training pipeline reads every epoch.
"""

import collections
import glob
import os

import tensorflow as tf
from tqdm import tqdm

from simmim_tf.data.vqa_dataset import read_questions
from simmim_tf.errors import SimMIMInputError

FEATURES = {
    "image": tf.io.FixedLenFeature([], tf.string),
    "path": tf.io.FixedLenFeature([], tf.string),
    "questions": tf.io.VarLenFeature(tf.string),
    "answers": tf.io.VarLenFeature(tf.string),
}


def _bytes(values):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))


def write_shards(data_dir, split, num_shards=8, records=None):
    """Writes the questions of `split`, grouped by image, into `num_shards` files."""
    records = records if records is not None else read_questions(data_dir)
    by_image = collections.defaultdict(list)
    for r in records:
        if r["split"] == split:
            by_image[r["image"]].append(r)
    if not by_image:
        raise SimMIMInputError(f"{data_dir}: no questions in split {split!r}")
    out = os.path.join(data_dir, "tfrecords")
    os.makedirs(out, exist_ok=True)
    names = [f"{split}-{i:05d}-of-{num_shards:05d}.tfrecord" for i in range(num_shards)]
    writers = [tf.io.TFRecordWriter(os.path.join(out, n + ".tmp")) for n in names]
    for i, (path, questions) in enumerate(tqdm(sorted(by_image.items()), desc=f"{split} shards")):
        full = os.path.join(data_dir, path)
        if not os.path.isfile(full):
            raise SimMIMInputError(f"{questions[0]['_where']}image not found: {full}")
        with open(full, "rb") as f:
            image = f.read()
        example = tf.train.Example(
            features=tf.train.Features(
                feature={
                    "image": _bytes([image]),
                    "path": _bytes([path.encode()]),
                    "questions": _bytes([q["question"].encode() for q in questions]),
                    "answers": _bytes([q["answer"].encode() for q in questions]),
                }
            )
        )
        writers[i % num_shards].write(example.SerializeToString())
    for writer in writers:
        writer.close()
    for n in names:  # complete shards appear at once
        os.replace(os.path.join(out, n + ".tmp"), os.path.join(out, n))
    return [os.path.join(out, n) for n in names]


def shard_files(data_dir, split):
    """The shard files of a split, or an error saying how to write them."""
    files = sorted(glob.glob(os.path.join(data_dir, "tfrecords", f"{split}-*-of-*.tfrecord")))
    if not files:
        raise SimMIMInputError(
            f"{data_dir}/tfrecords: no shards for split {split!r}; write them with "
            f"`simmim-tf data to-tfrecord --data {data_dir}`"
        )
    return files


def parse_example(serialized):
    """A serialized Example to {"image": bytes, "path", "questions", "answers"} tensors."""
    example = tf.io.parse_single_example(serialized, FEATURES)
    return {
        "image": example["image"],
        "path": example["path"],
        "questions": tf.sparse.to_dense(example["questions"]),
        "answers": tf.sparse.to_dense(example["answers"]),
    }
