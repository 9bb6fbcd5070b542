"""tf.data pipelines that feed `model.fit` ({"images", "token_ids",
"padding_mask"}, answer_id) batches. Each image is decoded once however many
questions it has.

memory   `make_dataset`: a `QuestionSet` whose images were decoded up front
         (Pillow) and stay in memory; each batch gathers its images. Fastest
         for sets that fit in memory (Sort-of-CLEVR: 170 MB).
stream   `make_stream_dataset(images_from_folder(...))`: PNG/JPEG files read
         and decoded in parallel each epoch (`cache=True` keeps them after
         the first), for sets larger than memory.
tfrecord `make_stream_dataset(images_from_tfrecords(...))`: the same from
         TFRecord shards (simmim_tf/data/tfrecord_shards.py), one record per
         image with its questions, read with parallel interleave.

The streaming pipelines tokenise in the graph (TFQuestionTokenizer), with
the ids of the run's tokenizer.json. Given `ObjectTargets`, every pipeline
yields a dict of targets instead of the answer ids: {"answers",
"grounding", "anchor"}, each example's own, looked up in the graph by its
image's path and its question (`ObjectTargetLookup`).
"""

import collections

import tensorflow as tf

from simmim_tf.preprocessing.tf_image_decoder import decode_image
from simmim_tf.preprocessing.tf_question_tokenizer import TFQuestionTokenizer


def _model_inputs(images, ids, mask):
    # The mask goes in as int32 (the model's Input casts it to bool): under a
    # tf.distribute strategy, Keras builds the model from one batch averaged
    # across replicas, and TF's AddN has no bool kernel.
    return {"images": images, "token_ids": ids, "padding_mask": tf.cast(mask, tf.int32)}


class ObjectTargetLookup:
    """Each example's object targets, looked up in the graph from its
    image's path and its question (`simmim_tf.data.object_targets`)."""

    def __init__(self, targets):
        def table(keys):
            init = tf.lookup.KeyValueTensorInitializer(
                tf.constant(keys), tf.range(len(keys), dtype=tf.int32)
            )
            return tf.lookup.StaticHashTable(init, default_value=-1)

        self.images = table(targets.image_paths)
        self.questions = table(targets.question_keys)
        self.regions = None if targets.regions is None else tf.constant(targets.regions)
        self.anchors = None if targets.anchors is None else tf.constant(targets.anchors)

    def __call__(self, answer_ids, paths, questions):
        """{"answers"[, "grounding"][, "anchor"]} of a batch."""
        out = {"answers": answer_ids}
        if self.regions is not None:
            out["grounding"] = tf.gather(self.regions, self.images.lookup(paths))
        if self.anchors is not None:
            keys = tf.strings.join([paths, questions], separator="\n")
            out["anchor"] = tf.cast(
                tf.gather(self.anchors, self.questions.lookup(keys)), tf.float32
            )
        return out


def make_dataset(
    question_set, token_ids, answer_ids, batch_size, shuffle, seed=0, object_targets=None
):
    """The memory pipeline: batches gathered from the decoded images of a
    QuestionSet. With `object_targets` (`ObjectTargets`), the targets are a
    dict: {"answers", "grounding" and/or "anchor"} for `SimMIMVQATraining`."""
    images = tf.constant(question_set.images)  # (num_images, H, W, 3) uint8
    columns = (question_set.image_index, token_ids, answer_ids)
    if object_targets is not None:
        lookup = ObjectTargetLookup(object_targets)
        paths = [question_set.image_paths[i] for i in question_set.image_index]
        columns += (paths, list(question_set.questions))
    ds = tf.data.Dataset.from_tensor_slices(columns)
    if shuffle:
        ds = ds.shuffle(len(token_ids), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)

    def to_inputs(index, ids, answers, *keys):
        targets = lookup(answers, *keys) if keys else answers
        return _model_inputs(tf.gather(images, index), ids, ids != 0), targets

    return ds.map(to_inputs, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def group_by_image(records, answers):
    """(image paths, questions per image, answer ids per image) of question records."""
    groups = collections.defaultdict(lambda: ([], []))
    for r in records:
        questions, ids = groups[r["image"]]
        questions.append(r["question"])
        ids.append(answers.id(r["answer"], r.get("_where", "")))
    paths = sorted(groups)
    return paths, [groups[p][0] for p in paths], [groups[p][1] for p in paths]


def images_from_folder(data_dir, records, answers, image_size):
    """Per-image elements {"image", "path", "questions", "answer_ids"} read
    from files (`path` relative to `data_dir`, as questions.jsonl has it)."""
    paths, questions, ids = group_by_image(records, answers)
    ds = tf.data.Dataset.from_tensor_slices(
        (
            [f"{data_dir}/{p}" for p in paths],
            paths,
            tf.ragged.constant(questions, tf.string),
            tf.ragged.constant(ids, tf.int32),
        )
    )

    def read(file, path, q, a):
        return {
            "image": decode_image(tf.io.read_file(file), image_size),
            "path": path,
            "questions": q,
            "answer_ids": a,
        }

    return ds.map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)


def images_from_tfrecords(files, answers, image_size):
    """Per-image elements {"image", "path", "questions", "answer_ids"} from TFRecord shards.

    An answer outside `answers` gets id -1 and its question is dropped by
    `make_stream_dataset`; the caller counts those from questions.jsonl (as
    `train` does with skip_bad_records), so none goes unreported.
    """
    from simmim_tf.data.tfrecord_shards import parse_example

    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(answers.answers), tf.range(len(answers), dtype=tf.int32)
        ),
        default_value=-1,
    )
    ds = tf.data.Dataset.from_tensor_slices(list(files)).interleave(
        tf.data.TFRecordDataset,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=False,
    )

    def read(serialized):
        example = parse_example(serialized)
        return {
            "image": decode_image(example["image"], image_size),
            "path": example["path"],
            "questions": example["questions"],
            "answer_ids": table.lookup(example["answers"]),
        }

    return ds.map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)


def make_stream_dataset(
    images,
    tokenizer,
    batch_size,
    shuffle,
    seed=0,
    cache=False,
    shuffle_buffer=4096,
    num_questions=None,
    object_targets=None,
):
    """Batches from per-image elements: cache, shuffle, one row per question,
    shuffle again across images, batch, tokenise in the graph, prefetch.

    Args:
        images: tf.data.Dataset of {"image", "questions", "answer_ids"}.
        tokenizer: QuestionTokenizer. Tokenised with its ids, in TF ops.
        cache: bool. Keep decoded images in memory after the first epoch.
        shuffle_buffer: int. Questions mixed across images (a few batches'
            worth of images' questions).
        num_questions: int or None. When known, the number of batches is
            declared, so that `fit` shows progress from the first epoch.
        object_targets: `ObjectTargets` or None. With them, the targets are
            a dict: {"answers", "grounding" and/or "anchor"}.
    """
    tf_tokenizer = TFQuestionTokenizer(tokenizer)
    if cache:
        images = images.cache()
    if shuffle:
        images = images.shuffle(1024, seed=seed, reshuffle_each_iteration=True)

    def one_row_per_question(element):
        n = tf.shape(element["questions"])[0]
        tiled = tf.repeat(element["image"][tf.newaxis], n, axis=0)  # (n, H, W, 3)
        paths = tf.repeat(element["path"][tf.newaxis], n)
        return tf.data.Dataset.from_tensor_slices(
            (tiled, element["questions"], element["answer_ids"], paths)
        )

    ds = images.flat_map(one_row_per_question).filter(lambda image, q, a, path: a >= 0)
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if num_questions is not None:
        ds = ds.apply(tf.data.experimental.assert_cardinality(-(-num_questions // batch_size)))

    lookup = ObjectTargetLookup(object_targets) if object_targets is not None else None

    def to_inputs(images, questions, answer_ids, paths):
        ids, mask = tf_tokenizer(questions)
        targets = lookup(answer_ids, paths, questions) if lookup else answer_ids
        return _model_inputs(images, ids, mask), targets

    return ds.map(to_inputs, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
