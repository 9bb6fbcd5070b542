"""`train_retrieval`: SimMIMRetriever on `captions.jsonl`, as
`simmim-tf train --task retrieval` runs it.

The run folder is a keras-hub preset of the trained retriever
(`SimMIMRetriever.from_preset(RUN)`) plus run_config.json, history.json,
logs/ (TensorBoard), skipped_records.txt (with skip_bad_records) and
eval.json (written by `simmim-tf evaluate`).

Each epoch pairs every training image with one of its captions, drawn
anew: a batch then never holds one image twice, and over the epochs every
caption is seen (CLIP's recipe on COCO's five captions per image).
"""

import json
import os

import keras
import numpy as np
import tensorflow as tf

from simmim_tf.atomic_files import write_atomically
from simmim_tf.data.bad_records import BadRecords
from simmim_tf.data.caption_dataset import load_captions
from simmim_tf.errors import SimMIMInputError
from simmim_tf.models.simmim_masked_image_pretrainer import load_image_encoder
from simmim_tf.models.simmim_retriever import SimMIMRetriever
from simmim_tf.models.simmim_retriever_preprocessor import SimMIMRetrieverPreprocessor
from simmim_tf.preprocessing.question_tokenizer import split_words
from simmim_tf.training.distribution import shard_by_data
from simmim_tf.training.run_config import RunConfig
from simmim_tf.training.runs import save_preset_atomically
from simmim_tf.training.vqa_trainer import (
    _pretrained_image_encoder,
    _report_skipped,
    start_run,
    warmup_cosine_schedule,
)


def caption_pairs(caption_set, token_ids, padding_mask, batch_size, seed=0):
    """tf.data of ({"images", "token_ids", "padding_mask"}, image id): every
    image once per epoch, in a new order, with one of its captions drawn at
    random each time."""
    per_image = caption_set.captions_per_image()
    table = np.full((len(per_image), max(len(c) for c in per_image)), -1, np.int32)
    for i, captions in enumerate(per_image):
        table[i, : len(captions)] = captions
    counts = np.array([len(c) for c in per_image], np.int32)
    ids, mask = tf.constant(token_ids), tf.constant(padding_mask)
    generator = tf.random.Generator.from_seed(seed)

    def pick(image, row, count, image_id):
        j = row[generator.uniform((), 0, count, dtype=tf.int32)]
        return {"images": image, "token_ids": ids[j], "padding_mask": mask[j]}, image_id

    images = np.arange(len(per_image), dtype=np.int32)
    return (
        tf.data.Dataset.from_tensor_slices((caption_set.images, table, counts, images))
        .shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
        .map(pick, num_parallel_calls=1)  # one generator, drawn in order
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )


def train_retrieval(config: RunConfig, out_dir, verbose="auto"):
    """Trains SimMIMRetriever on `config.data`'s captions and writes the run
    folder. Returns the model."""
    if config.embedding_dim is not None and config.embedding_dim < 1:
        raise SimMIMInputError(f"embedding_dim must be at least 1, got {config.embedding_dim}")
    strategy, out_dir, batch, learning_rate = start_run(config, out_dir)

    bad = BadRecords(skip=config.skip_bad_records)
    train = load_captions(config.data, "train", bad=bad)
    _report_skipped(bad, out_dir, len(train), "captions")
    preprocessor = SimMIMRetrieverPreprocessor.from_data(
        train.captions, train.images.shape[1], config.max_sequence_length
    )
    tokenizer = preprocessor.caption_tokenizer()
    token_ids, padding_mask = tokenizer.encode_batch(train.captions)
    lengths = [len(split_words(c)) for c in train.captions]
    truncated = sum(n > config.max_sequence_length for n in lengths)
    if truncated:
        print(
            f"note: {truncated} of {len(train)} training captions are longer than "
            f"{config.max_sequence_length} tokens and are truncated (the longest has "
            f"{max(lengths)}); raise --max-sequence-length to keep them whole"
        )
    dataset = caption_pairs(train, token_ids, padding_mask, batch, config.seed)
    steps = int(np.ceil(len(train.images) / batch)) * config.epochs
    image_encoder = _pretrained_image_encoder(config.init_from, train.images.shape[1])
    with strategy.scope():
        model = SimMIMRetriever.from_preset(
            config.preset,
            preprocessor=preprocessor,
            embedding_dim=config.embedding_dim,
            contrastive_loss=config.contrastive_loss,
            **image_encoder,
        )
        if config.init_from:
            copied = load_image_encoder(model.backbone, config.init_from)
            print(f"image encoder initialised from {config.init_from} ({copied} weight arrays)")
        schedule = warmup_cosine_schedule(learning_rate, steps, config.warmup_fraction)
        model.compile(
            learning_rate=schedule,
            steps_per_execution=config.steps_per_execution,
            jit_compile=config.jit_compile,
        )
    # Trained on the tokenised pipeline; the preset keeps the preprocessor.
    model.preprocessor = None
    history = model.fit(
        shard_by_data(dataset),
        epochs=config.epochs,
        verbose=verbose,
        shuffle=False,
        callbacks=[
            # A killed run started again with the same command resumes from
            # the last finished epoch.
            keras.callbacks.BackupAndRestore(os.path.join(out_dir, "backup")),
            keras.callbacks.TerminateOnNaN(),
            keras.callbacks.TensorBoard(os.path.join(out_dir, "logs"), profile_batch=0),
        ],
    ).history
    if not np.all(np.isfinite(history.get("loss", [0.0]))):
        raise RuntimeError("training stopped: the loss became NaN; the model was not written")
    history["steps"] = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
    model.preprocessor = preprocessor
    save_preset_atomically(model, out_dir)
    write_atomically(os.path.join(out_dir, "history.json"), json.dumps(history, indent=2))
    return model
