"""`train` for SimMIMVQA, as `simmim-tf train` runs it.

A run folder is a keras-hub preset of the trained model (last epoch), so
`SimMIMVQA.from_preset(RUN)` loads it, plus the run's own files:
    config.json, task.json, preprocessor.json, tokenizer.json,
    image_converter.json, metadata.json, model.weights.h5, task.weights.h5,
    assets/tokenizer/vocabulary.txt
                         the preset (`SimMIMVQA.save_to_preset`)
    best/, best.json     the best epoch's preset (validation accuracy, or
                         training loss without a validation share)
    logs/                TensorBoard logs (`tensorboard --logdir RUN/logs`)
    run_config.json      the training settings
    history.json         per-epoch loss and accuracy
    skipped_records.txt  with skip_bad_records: each record left out, and why
    eval.json            written by `evaluate`
    backup/              BackupAndRestore state while training runs
"""

import dataclasses
import json
import os
import time

import keras
import numpy as np
import tensorflow as tf

from simmim_tf.atomic_files import write_atomically
from simmim_tf.data.bad_records import BadRecords
from simmim_tf.errors import SimMIMInputError
from simmim_tf.models.simmim_image_converter import SimMIMImageConverter
from simmim_tf.models.simmim_masked_image_pretrainer import (
    load_image_encoder,
    pretrained_image_config,
)
from simmim_tf.models.simmim_presets import SIMMIM_PRESETS
from simmim_tf.models.simmim_tokenizer import SimMIMTokenizer
from simmim_tf.models.simmim_vqa import SimMIMVQA
from simmim_tf.models.simmim_vqa_preprocessor import SimMIMVQAPreprocessor
from simmim_tf.models.simmim_vqa_training import SimMIMVQATraining
from simmim_tf.training.best_checkpoint import BestCheckpoint
from simmim_tf.training.distribution import (
    fit_under_multi_worker,
    make_strategy,
    run_folder,
    shard_by_data,
)
from simmim_tf.training.precise_batch_norm import PreciseBatchNorm
from simmim_tf.training.run_config import RunConfig
from simmim_tf.training.run_progress import fit_progress, known_steps
from simmim_tf.training.runs import removed_if_nothing_trained, save_preset_atomically
from simmim_tf.training.time_budget import TimeBudget
from simmim_tf.training.training_data import has_scenes, training_data


def warmup_cosine_schedule(learning_rate, total_steps, warmup_fraction):
    """Linear warm-up over a share of the steps, then cosine decay to 0
    (`simmim-tf train` and `simmim-tf pretrain`)."""
    warmup = max(1, int(total_steps * warmup_fraction))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        decay_steps=max(1, total_steps - warmup),
        warmup_target=learning_rate,
        warmup_steps=warmup,
    )


def start_run(config: RunConfig, out_dir):
    """What every `simmim-tf train` task does first: seed, strategy, the run
    folder with run_config.json. Returns (strategy, run folder, global
    batch, peak learning rate)."""
    keras.utils.set_random_seed(config.seed)
    strategy = make_strategy(config.strategy)
    out_dir = run_folder(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    config.save(os.path.join(out_dir, "run_config.json"))
    batch, learning_rate = config.global_batch_and_learning_rate(strategy.num_replicas_in_sync)
    if (batch, learning_rate) != (config.batch_size, config.learning_rate):
        print(
            f"{strategy.num_replicas_in_sync} replica(s): global batch {batch}, "
            f"peak learning rate {learning_rate:g}"
        )
    return strategy, out_dir, batch, learning_rate


def train(config: RunConfig, out_dir, verbose="auto"):
    """Trains SimMIMVQA on `config.data` and writes the run folder. Returns the model."""
    with removed_if_nothing_trained(run_folder(out_dir)):
        return _train(config, out_dir, verbose)


def _train(config, out_dir, verbose):
    started = time.perf_counter()  # `config.minutes` counts from here
    strategy, out_dir, batch, learning_rate = start_run(config, out_dir)
    # From here on config.batch_size is the global batch.
    config = dataclasses.replace(config, batch_size=batch, learning_rate=learning_rate)
    grouped = _image_grouped(config, strategy)
    bad = BadRecords(skip=config.skip_bad_records)
    # The data code sees the data section only; the region grid of its object
    # targets follows a pretrained image encoder's patch size.
    pretrained = pretrained_image_config(config.init_from) if config.init_from else {}
    data = training_data(config.data_section(pretrained.get("patch_size")), bad, grouped)
    print(data.object_losses)
    _report_skipped(bad, out_dir, data.num_questions)
    preprocessor = SimMIMVQAPreprocessor(
        tokenizer=SimMIMTokenizer(data.tokenizer.vocabulary),
        image_converter=SimMIMImageConverter(data.image_size),
        answers=data.answers.answers,
        sequence_length=config.max_sequence_length,
    )
    model, trained = _compiled_models(config, data, strategy, grouped)
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        fit_under_multi_worker(trained, strategy)
    # The global batch is split between the replicas.
    dataset = shard_by_data(data.dataset)
    validation = shard_by_data(data.validation) if data.validation is not None else None
    prefix = "answers_" if trained is not model else ""  # the wrapper's metrics are per output
    budget, callbacks, fit_verbose = _callbacks(
        config, out_dir, model, preprocessor, validation, prefix, started, verbose
    )
    # First: BestCheckpoint and the end of training see the recomputed statistics.
    stem = model.backbone.get_layer("patch_embedding")
    callbacks.insert(0, PreciseBatchNorm(stem, data.dataset))
    fit_and_save(
        model, preprocessor, dataset, validation, config.epochs, callbacks, out_dir,
        trained=trained, prefix=prefix, budget=budget, verbose=fit_verbose,
    )  # fmt: skip
    return model


def fit_and_save(
    model, preprocessor, dataset, validation, epochs, callbacks, out_dir,
    trained=None, prefix="", budget=None, verbose=0,
):  # fmt: skip
    """What the VQA and video-qa trainers do once the model is compiled: fit,
    then write the preset (`model` with `preprocessor`) and RUN/history.json.

    trained: the model `fit` trains where it is a wrapper of `model` whose
    metric names carry `prefix`; budget: the run's `TimeBudget` or None;
    verbose: `fit`'s."""
    trained = trained or model
    # shuffle=False: the tf.data pipeline shuffles (Keras would only warn).
    history = trained.fit(
        dataset,
        validation_data=validation,
        epochs=epochs,
        callbacks=callbacks,
        verbose=verbose,
        shuffle=False,
    ).history
    if not np.all(np.isfinite(history.get("loss", [0.0]))):
        raise RuntimeError(
            "training stopped: the loss became NaN; the model was not written "
            f"(the best epoch before it, if any, is in {out_dir}/best/)"
        )
    # The served model's names: accuracy, val_accuracy (answers_ dropped).
    history = {k.replace(prefix, "") if prefix else k: v for k, v in history.items()}
    history["steps"] = int(keras.ops.convert_to_numpy(trained.optimizer.iterations))
    if budget is not None:
        history["train_minutes"] = budget.elapsed() / 60
    # Trained on tokenised tf.data pipelines; the preset carries the
    # preprocessor, so that the saved model takes raw inputs.
    model.preprocessor = preprocessor
    save_preset_atomically(model, out_dir)
    write_atomically(os.path.join(out_dir, "history.json"), json.dumps(history, indent=2))


def _image_grouped(config, strategy):
    """Whether batches are image-grouped. They need each batch whole on one
    replica (images and questions cannot be split separately); elsewhere
    every example carries its own image and object targets, and the losses
    are the same."""
    grouped = (
        config.input_pipeline == "memory"
        and strategy.num_replicas_in_sync == 1
        and not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    )
    if config.questions_per_image > 1 and not grouped:
        print(
            f"questions_per_image {config.questions_per_image}: one question per example "
            f"(image-grouped batches need the memory pipeline on one replica)"
        )
    return grouped


def _compiled_models(config, data, strategy, grouped):
    """(the served SimMIMVQA, the model `fit` trains: the served one, or the
    `SimMIMVQATraining` wrapper that adds the object losses), compiled under
    `strategy`."""
    image_encoder = _pretrained_image_encoder(config.init_from, data.image_size)
    architecture = {**image_encoder, **_without_scenes(config)}
    with strategy.scope():  # variables mirrored on every replica
        model = SimMIMVQA.from_preset(
            config.preset,
            num_answers=len(data.answers),
            vocabulary_size=data.tokenizer.vocabulary_size,
            image_size=data.image_size,
            max_sequence_length=config.max_sequence_length,
            **architecture,
        )
        if config.init_from:
            copied = load_image_encoder(model.backbone, config.init_from)
            print(f"image encoder initialised from {config.init_from} ({copied} weight arrays)")
        compile_args = dict(
            label_smoothing=config.label_smoothing,
            steps_per_execution=config.steps_per_execution,
            jit_compile=config.jit_compile,
        )
        if config.minutes:  # set each step by the TimeBudget callback
            schedule = config.learning_rate
        else:
            steps = data.steps_per_epoch * config.epochs
            schedule = warmup_cosine_schedule(config.learning_rate, steps, config.warmup_fraction)
        model.compile(learning_rate=schedule, **compile_args)
        if not (grouped or data.attribute_sizes or data.anchor_targets):
            return model, model
        trained = SimMIMVQATraining(
            model,
            data.attribute_sizes,
            config.grounding_weight,
            anchor_weight=config.anchor_weight if data.anchor_targets else 0.0,
        )
        # Its own optimizer: the saved preset holds the served model only,
        # whose optimizer state would not match the wrapper's variables
        # (RUN/history.json records the steps taken).
        trained.compile(model.default_optimizer(schedule), **compile_args)
    return model, trained


def _callbacks(config, out_dir, model, preprocessor, validation, prefix, started, verbose):
    """(the time budget or None, the run's callbacks, `fit`'s verbose)."""
    backup = os.path.join(out_dir, "backup")
    _say_where_it_resumes(backup, config.epochs)
    callbacks = [
        # A killed run started again with the same command resumes from the
        # last finished epoch.
        keras.callbacks.BackupAndRestore(backup),
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.TensorBoard(os.path.join(out_dir, "logs"), profile_batch=0),
        BestCheckpoint(
            out_dir,
            f"val_{prefix}accuracy" if validation is not None else "loss",
            model,
            preprocessor,
        ),
    ]
    budget = None
    if config.minutes:
        if config.minutes <= 0:
            raise SimMIMInputError(f"minutes must be positive, got {config.minutes}")
        budget = TimeBudget(
            config.minutes, config.learning_rate, config.warmup_fraction, start=started
        )
        print(f"training for {config.minutes:g} minutes (at most {config.epochs} epochs)")
    fit_verbose, progress = fit_progress(
        verbose,
        known_steps(validation),
        budget_s=60.0 * config.minutes if config.minutes else None,
        start=started,
    )
    # The budget last: it times the end of each epoch (checkpoints included).
    return budget, callbacks + progress + ([budget] if budget else []), fit_verbose


def _without_scenes(config):
    """Backbone arguments for data without scenes.jsonl: the relation
    scores read offsets in image sides, whose score MLP starts random, so
    that the answers train the refined positions from the first step (in
    region sides it starts at zero and they barely move: Sort-of-CLEVR
    relational 97.6% against 90.5% in 30 minutes,
    benchmarks/results/without_scenes)."""
    relational = SIMMIM_PRESETS[config.preset].get("relational") or {}
    if has_scenes(config.data) or not relational.get("offsets_in_regions"):
        return {}
    print("no scenes: relation offsets in image sides, so the answers train the positions")
    return {"relational": {"offsets_in_regions": False}}


def _say_where_it_resumes(backup, epochs):
    """Prints "resuming after epoch N" when `backup` holds a killed run's state."""
    metadata = os.path.join(backup, "training_metadata.json")
    if os.path.isfile(metadata):
        with open(metadata) as f:
            done = json.load(f).get("epoch", 0)
        print(f"resuming after epoch {done} of {epochs} (the state in {backup})")


def _pretrained_image_encoder(folder, image_size):
    """Backbone arguments of the image encoder pretrained in `folder` ({} for None)."""
    if not folder:
        return {}
    fields = pretrained_image_config(folder)
    pretrained_size = fields.pop("image_size")
    if pretrained_size != image_size:
        raise SimMIMInputError(
            f"--init-from {folder}: pretrained on {pretrained_size}-px images, the data's "
            f"are {image_size} px (pretrain with --image-size {image_size})"
        )
    return fields


def _report_skipped(bad, out_dir, num_kept, noun="questions"):
    path = os.path.join(out_dir, "skipped_records.txt")
    if not bad.messages:
        if os.path.exists(path):
            os.remove(path)
        return
    with open(path, "w") as f:
        f.write("\n".join(bad.messages) + "\n")
    print(
        f"skipped {len(bad)} bad record(s), leaving out {bad.left_out} {noun}; training on "
        f"{num_kept} {noun}; each skipped record and why: {path}\n{bad.summary(limit=5)}"
    )
