"""`train_video_qa`: SimMIMVideoQA on a clip folder (`simmim-tf train --task
video-qa`).

The run folder is a keras-hub preset of the trained model
(`SimMIMVideoQA.from_preset(RUN)`) plus run_config.json, history.json,
logs/ (TensorBoard), best/ (the best epoch's preset), skipped_records.txt
(with skip_bad_records) and eval.json (written by `simmim-tf evaluate`),
as a VQA run's.

Each batch holds the questions of one clip in groups of
`questions_per_image`, so every clip's frames are encoded once per group
(`clip_grouped_batches`); that needs the whole batch on one replica.
"""

import time

import numpy as np
import tensorflow as tf

from simmim_tf.data.bad_records import BadRecords
from simmim_tf.data.clip_dataset import load_clip_split, split_off_clips
from simmim_tf.errors import SimMIMInputError
from simmim_tf.models.simmim_video_qa import SimMIMVideoQA
from simmim_tf.models.simmim_video_qa_preprocessor import SimMIMVideoQAPreprocessor
from simmim_tf.training.clip_batches import clip_grouped_batches
from simmim_tf.training.distribution import run_folder
from simmim_tf.training.image_grouped_batches import steps_per_epoch
from simmim_tf.training.precise_batch_norm import PreciseBatchNorm
from simmim_tf.training.run_config import RunConfig
from simmim_tf.training.runs import removed_if_nothing_trained
from simmim_tf.training.vqa_trainer import (
    _callbacks,
    _report_skipped,
    fit_and_save,
    start_run,
    warmup_cosine_schedule,
)


def train_video_qa(config: RunConfig, out_dir, verbose="auto"):
    """Trains SimMIMVideoQA on `config.data`'s clips and writes the run
    folder. Returns the model."""
    with removed_if_nothing_trained(run_folder(out_dir)):
        return _train(config, out_dir, verbose)


def _train(config, out_dir, verbose):
    started = time.perf_counter()  # `config.minutes` counts from here
    strategy, out_dir, batch, learning_rate = start_run(config, out_dir)
    if strategy.num_replicas_in_sync > 1 or isinstance(
        strategy, tf.distribute.MultiWorkerMirroredStrategy
    ):
        raise SimMIMInputError(
            "--task video-qa trains on one replica (a batch's questions share their clips' "
            "frames); use --strategy one_device"
        )
    print("video-qa: answer loss only (clips carry no scenes.jsonl for the object losses)")
    bad = BadRecords(skip=config.skip_bad_records)
    train = load_clip_split(config.data, "train", bad=bad)
    _report_skipped(bad, out_dir, len(train))
    preprocessor = SimMIMVideoQAPreprocessor.from_data(
        train.questions, train.answers, train.frames.shape[2], config.max_sequence_length
    )
    train, validation = split_off_clips(train, config.validation_fraction, config.seed)
    per_clip = max(1, config.questions_per_image)
    dataset = _clip_batches(preprocessor, train, batch, per_clip, config.seed)
    validation_data = None
    if len(validation):
        validation_data = _clip_batches(preprocessor, validation, batch, per_clip, config.seed)
    with strategy.scope():
        model = SimMIMVideoQA.from_preset(config.preset, preprocessor=preprocessor)
        if config.minutes:  # set each step by the TimeBudget callback
            schedule = learning_rate
        else:
            steps = steps_per_epoch(train, batch, per_clip) * config.epochs
            schedule = warmup_cosine_schedule(learning_rate, steps, config.warmup_fraction)
        model.compile(
            learning_rate=schedule,
            label_smoothing=config.label_smoothing,
            steps_per_execution=config.steps_per_execution,
            jit_compile=config.jit_compile,
        )
    model.preprocessor = None  # trained on the tokenised pipeline
    budget, callbacks, fit_verbose = _callbacks(
        config, out_dir, model, preprocessor, validation_data, "", started, verbose
    )
    # First: the checkpoints and the saved model see the stem's recomputed
    # batch-norm statistics (over frames, as the image encoder sees them).
    frames = dataset.map(lambda x, y: ({"images": _flat_frames(x["frames"])}, y))
    callbacks.insert(0, PreciseBatchNorm(model.backbone.get_layer("patch_embedding"), frames))
    fit_and_save(
        model, preprocessor, dataset, validation_data, config.epochs, callbacks, out_dir,
        budget=budget, verbose=fit_verbose,
    )  # fmt: skip
    return model


def _clip_batches(preprocessor, clip_set, batch, per_clip, seed):
    """`clip_grouped_batches` of a share of the training split, its
    questions tokenised and its answers looked up by `preprocessor`."""
    token_ids, _ = preprocessor.question_tokenizer().encode_batch(clip_set.questions)
    index = {a: i for i, a in enumerate(preprocessor.answers)}
    answer_ids = np.array([index[a] for a in clip_set.answers], np.int32)
    return clip_grouped_batches(clip_set, token_ids, answer_ids, batch, per_clip, seed)


def _flat_frames(frames):
    """(clips, frames, H, W, C) → (clips × frames, H, W, C)."""
    return tf.reshape(frames, [-1, *frames.shape[2:]])
