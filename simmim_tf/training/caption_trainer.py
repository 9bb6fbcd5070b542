"""The tasks trained on `captions.jsonl`: `train_retrieval`
(SimMIMRetriever, `simmim-tf train --task retrieval`) and
`train_captioning` (SimMIMCaptioner, `--task captioning`).

The run folder is a keras-hub preset of the trained model
(`SimMIMRetriever.from_preset(RUN)`, `SimMIMCaptioner.from_preset(RUN)`)
plus run_config.json, history.json,
logs/ (TensorBoard), skipped_records.txt (with skip_bad_records) and
eval.json (written by `simmim-tf evaluate`).

Each epoch pairs every training image with one of its captions, drawn
anew: a batch then never holds one image twice, and over the epochs every
caption is seen (CLIP's recipe on COCO's five captions per image; the
captioner trains the same way).
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
from simmim_tf.models.simmim_captioner import SimMIMCaptioner
from simmim_tf.models.simmim_captioner_preprocessor import SimMIMCaptionerPreprocessor
from simmim_tf.models.simmim_masked_image_pretrainer import load_image_encoder
from simmim_tf.models.simmim_retriever import SimMIMRetriever
from simmim_tf.models.simmim_retriever_preprocessor import SimMIMRetrieverPreprocessor
from simmim_tf.preprocessing.question_tokenizer import split_words
from simmim_tf.training.distribution import run_folder, shard_by_data
from simmim_tf.training.precise_batch_norm import PreciseBatchNorm
from simmim_tf.training.run_config import RunConfig
from simmim_tf.training.run_progress import fit_progress
from simmim_tf.training.runs import removed_if_nothing_trained, save_preset_atomically
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
    return _train_on_captions(config, out_dir, "retrieval", verbose)


def train_captioning(config: RunConfig, out_dir, verbose="auto"):
    """Trains SimMIMCaptioner on `config.data`'s captions (teacher forcing)
    and writes the run folder. Returns the model."""
    if config.decoder_layers < 1:
        raise SimMIMInputError(f"decoder_layers must be at least 1, got {config.decoder_layers}")
    return _train_on_captions(config, out_dir, "captioning", verbose)


def _train_on_captions(config, out_dir, task, verbose):
    with removed_if_nothing_trained(run_folder(out_dir)):
        return _train_captions_model(config, out_dir, task, verbose)


def _train_captions_model(config, out_dir, task, verbose):
    strategy, out_dir, batch, learning_rate = start_run(config, out_dir)
    bad = BadRecords(skip=config.skip_bad_records)
    train = load_captions(config.data, "train", bad=bad)
    _report_skipped(bad, out_dir, len(train), "captions")
    image_size = train.images.shape[1]
    preprocessor, token_ids, padding_mask = _tokenised(task, train, image_size, config)
    dataset = caption_pairs(train, token_ids, padding_mask, batch, config.seed)
    if task == "captioning":
        dataset = dataset.map(teacher_forcing)
    steps = int(np.ceil(len(train.images) / batch)) * config.epochs
    image_encoder = _pretrained_image_encoder(config.init_from, image_size)
    with strategy.scope():
        model = _untrained_model(task, config, preprocessor, image_encoder)
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
    fit_verbose, progress = fit_progress(verbose)
    history = model.fit(
        shard_by_data(dataset),
        epochs=config.epochs,
        verbose=fit_verbose,
        shuffle=False,
        callbacks=[
            # First: the checkpoints and the saved model see the stem's
            # recomputed batch-norm statistics.
            PreciseBatchNorm(model.backbone.get_layer("patch_embedding"), dataset),
            # A killed run started again with the same command resumes from
            # the last finished epoch.
            keras.callbacks.BackupAndRestore(os.path.join(out_dir, "backup")),
            keras.callbacks.TerminateOnNaN(),
            keras.callbacks.TensorBoard(os.path.join(out_dir, "logs"), profile_batch=0),
            *progress,
        ],
    ).history
    if not np.all(np.isfinite(history.get("loss", [0.0]))):
        raise RuntimeError("training stopped: the loss became NaN; the model was not written")
    history["steps"] = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
    model.preprocessor = preprocessor
    save_preset_atomically(model, out_dir)
    write_atomically(os.path.join(out_dir, "history.json"), json.dumps(history, indent=2))
    return model


def _tokenised(task, train, image_size, config):
    """(the task's preprocessor fitted to the training captions, their token
    ids, padding mask); says how many captions are cut to fit."""
    if task == "retrieval":
        preprocessor = SimMIMRetrieverPreprocessor.from_data(
            train.captions, image_size, config.max_sequence_length
        )
        token_ids, padding_mask = preprocessor.caption_tokenizer().encode_batch(train.captions)
        words = config.max_sequence_length
    else:
        preprocessor = SimMIMCaptionerPreprocessor.from_data(
            train.captions, image_size, config.max_sequence_length
        )
        token_ids, padding_mask = (
            np.asarray(t) for t in preprocessor.packed_token_ids(train.captions)
        )
        words = config.max_sequence_length - 1  # then [END]
    lengths = [len(split_words(c)) for c in train.captions]
    truncated = sum(n > words for n in lengths)
    if truncated:
        print(
            f"note: {truncated} of {len(train)} training captions are longer than "
            f"{words} words and are truncated (the longest has {max(lengths)}); raise "
            "--max-sequence-length to keep them whole"
        )
    return preprocessor, token_ids, padding_mask


def _untrained_model(task, config, preprocessor, image_encoder):
    if task == "retrieval":
        return SimMIMRetriever.from_preset(
            config.preset,
            preprocessor=preprocessor,
            embedding_dim=config.embedding_dim,
            contrastive_loss=config.contrastive_loss,
            **image_encoder,
        )
    return SimMIMCaptioner.from_preset(
        config.preset,
        preprocessor=preprocessor,
        decoder_layers=config.decoder_layers,
        **image_encoder,
    )


def teacher_forcing(x, image_id):
    """A packed caption ([START] words [END] padding) → the decoder's input
    (all but the last token), its targets (shifted by one) and their weights."""
    ids, mask = x["token_ids"], x["padding_mask"]
    inputs = {"images": x["images"], "token_ids": ids[..., :-1]}
    return inputs, ids[..., 1:], tf.cast(mask[..., 1:], tf.float32)
