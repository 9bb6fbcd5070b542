"""`train` and `evaluate` for SimMIMVQA, as `simmim-tf train|evaluate` run them.

A run folder holds:
    model.keras          the trained model (architecture + weights), last epoch
    best.keras, best.json  the best epoch's model (validation accuracy, or
                         training loss without a validation share)
    logs/                TensorBoard logs (`tensorboard --logdir RUN/logs`)
    tokenizer.json       question vocabulary and sequence length
    answers.json         answer vocabulary with training counts
    run_config.json      the training settings
    history.json         per-epoch loss and accuracy
    skipped_records.txt  with skip_bad_records: each record left out, and why
    eval.json            written by `evaluate`
    backup/              BackupAndRestore state while training runs
"""

import dataclasses
import json
import os

import keras
import numpy as np
import tensorflow as tf

from simmim_tf.data.bad_records import BadRecords
from simmim_tf.data.region_targets import region_targets
from simmim_tf.data.tfrecord_shards import shard_files
from simmim_tf.data.vqa_dataset import load_split, read_questions
from simmim_tf.errors import SimMIMInputError
from simmim_tf.evaluation import accuracy_by_family
from simmim_tf.models.simmim_presets import SIMMIM_PRESETS
from simmim_tf.models.simmim_vqa import SimMIMVQA
from simmim_tf.models.simmim_vqa_training import SimMIMVQATraining
from simmim_tf.preprocessing.answer_vocabulary import AnswerVocabulary
from simmim_tf.preprocessing.image_loading import image_header_problem, load_image
from simmim_tf.preprocessing.question_tokenizer import QuestionTokenizer
from simmim_tf.training.distribution import (
    fit_under_multi_worker,
    make_strategy,
    run_folder,
    shard_by_data,
)
from simmim_tf.training.image_grouped_batches import image_grouped_batches
from simmim_tf.training.image_grouped_batches import steps_per_epoch as grouped_steps_per_epoch
from simmim_tf.training.input_pipeline import (
    images_from_folder,
    images_from_tfrecords,
    make_dataset,
    make_stream_dataset,
)
from simmim_tf.training.run_config import RunConfig


def _encode_answers(vocab, answers):
    return np.array([vocab.id(a) for a in answers], np.int32)


def _schedule(learning_rate, total_steps, warmup_fraction):
    warmup = max(1, int(total_steps * warmup_fraction))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        decay_steps=max(1, total_steps - warmup),
        warmup_target=learning_rate,
        warmup_steps=warmup,
    )


def train(config: RunConfig, out_dir, verbose="auto"):
    """Trains SimMIMVQA on `config.data` and writes the run folder. Returns the model."""
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
    # From here on config.batch_size is the global batch.
    config = dataclasses.replace(config, batch_size=batch, learning_rate=learning_rate)

    # Image-grouped batches (and the grounding loss) need each batch whole on
    # one replica: images and questions cannot be split separately.
    grouped = (
        config.input_pipeline == "memory"
        and strategy.num_replicas_in_sync == 1
        and not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    )
    bad = BadRecords(skip=config.skip_bad_records)
    data = _training_data(config, bad, grouped)
    _report_skipped(bad, out_dir, data.num_questions)
    data.tokenizer.save(os.path.join(out_dir, "tokenizer.json"))
    data.answers.save(os.path.join(out_dir, "answers.json"))
    steps = data.steps_per_epoch * config.epochs
    with strategy.scope():  # variables mirrored on every replica
        model = SimMIMVQA.from_preset(
            config.preset,
            num_answers=len(data.answers),
            vocabulary_size=data.tokenizer.vocabulary_size,
            image_size=data.image_size,
            max_sequence_length=config.max_sequence_length,
        )
        compile_args = dict(
            label_smoothing=config.label_smoothing,
            steps_per_execution=config.steps_per_execution,
            jit_compile=config.jit_compile,
        )
        schedule = _schedule(config.learning_rate, steps, config.warmup_fraction)
        model.compile(learning_rate=schedule, **compile_args)
        trained = model
        if grouped:
            trained = SimMIMVQATraining(model, data.attribute_sizes, config.grounding_weight)
            # Its own optimizer: the saved model.keras holds the served model
            # only, whose optimizer state would not match the wrapper's
            # variables (RUN/history.json records the steps taken).
            trained.compile(model.default_optimizer(schedule), **compile_args)
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        fit_under_multi_worker(model, strategy)
    # The global batch is split between the replicas.
    dataset = shard_by_data(data.dataset)
    validation = shard_by_data(data.validation) if data.validation is not None else None
    prefix = "answers_" if grouped else ""  # the wrapper's metrics are per output
    callbacks = [
        # A killed run started again with the same command resumes from the
        # last finished epoch.
        keras.callbacks.BackupAndRestore(os.path.join(out_dir, "backup")),
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.TensorBoard(os.path.join(out_dir, "logs"), profile_batch=0),
        BestCheckpoint(
            out_dir,
            f"val_{prefix}accuracy" if validation is not None else "loss",
            model,
        ),
    ]
    # shuffle=False: the tf.data pipeline shuffles (Keras would only warn).
    history = trained.fit(
        dataset,
        validation_data=validation,
        epochs=config.epochs,
        callbacks=callbacks,
        verbose=verbose,
        shuffle=False,
    ).history
    if not np.all(np.isfinite(history.get("loss", [0.0]))):
        raise RuntimeError(
            "training stopped: the loss became NaN; model.keras was not written "
            f"(the best epoch before it, if any, is in {out_dir}/best.keras)"
        )
    # The served model's names: accuracy, val_accuracy (answers_ dropped).
    history = {k.replace(prefix, "") if prefix else k: v for k, v in history.items()}
    history["steps"] = int(keras.ops.convert_to_numpy(trained.optimizer.iterations))
    if trained is not model:
        # The served model's optimizer, built and at the wrapper's step, so
        # that model.keras reloads without an optimizer mismatch (Adam's
        # moments are the wrapper's and are not carried over).
        with strategy.scope():
            model.optimizer.build(model.trainable_variables)
            model.optimizer.iterations.assign(trained.optimizer.iterations)
    save_atomically(model, os.path.join(out_dir, "model.keras"))
    with open(os.path.join(out_dir, "history.json"), "w") as f:
        json.dump(history, f, indent=2)
    return model


@dataclasses.dataclass
class TrainingData:
    """What `train` needs of the data: pipelines, vocabularies, sizes."""

    dataset: tf.data.Dataset
    validation: tf.data.Dataset | None
    tokenizer: QuestionTokenizer
    answers: AnswerVocabulary
    image_size: int
    num_questions: int
    steps_per_epoch: int
    attribute_sizes: list | None = None  # grounding loss: classes per object attribute


def _training_data(config, bad, grouped=False):
    """`TrainingData` of the training split.

    Bad records go to `bad`; so do answers outside the top `max_answers`.
    With `grouped` (memory pipeline only), batches for `SimMIMVQATraining`,
    with region targets when the data has scenes and grounding is on.
    """
    if config.questions_per_image < 1:
        raise SimMIMInputError(
            f"questions_per_image must be at least 1, got {config.questions_per_image}"
        )
    if config.input_pipeline == "memory":
        train_set = load_split(config.data, "train", bad=bad)
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
                f"{config.data}: images must be square; got {train_set.images.shape[1:3]}"
            )
    elif config.input_pipeline in ("stream", "tfrecord"):
        records = [r for r in read_questions(config.data, bad) if r["split"] == "train"]
        records = _with_readable_images(config.data, records, bad)
        image_size = load_image(os.path.join(config.data, records[0]["image"])).shape[0]
    else:
        raise SimMIMInputError(
            f"input_pipeline must be memory, stream or tfrecord; got {config.input_pipeline!r}"
        )
    answers = AnswerVocabulary.fit([r["answer"] for r in records], config.max_answers)
    known = [r["answer"] in answers for r in records]
    for r, ok in zip(records, known, strict=True):
        if not ok:
            bad(
                f"{r['_where']}answer {r['answer']!r} is not among the {len(answers)} most "
                "frequent answers (max_answers)"
            )
    records = [r for r, ok in zip(records, known, strict=True) if ok]
    held_out = _held_out_images(records, config.validation_fraction, config.seed)
    tokenizer = QuestionTokenizer.fit(
        [r["question"] for r in records if r["image"] not in held_out], config.max_sequence_length
    )
    attribute_sizes = None
    num_train = sum(r["image"] not in held_out for r in records)
    steps_per_epoch = -(-num_train // config.batch_size)
    if config.input_pipeline == "memory":
        train_set = train_set.subset(known)
        is_held_out = [train_set.image_paths[i] in held_out for i in train_set.image_index]
        parts = [train_set.subset(np.logical_not(is_held_out)), train_set.subset(is_held_out)]
        targets = None
        if grouped and config.grounding_weight and has_scenes(config.data):
            patch_size = SIMMIM_PRESETS[config.preset]["patch_size"]
            grid = (-(-image_size // patch_size),) * 2
            targets = region_targets(config.data, train_set.image_paths, grid)
            attribute_sizes = targets.attribute_sizes
        datasets = []
        for part, shuffle in zip(parts, (True, False), strict=True):
            token_ids, _ = tokenizer.encode_batch(part.questions)
            answer_ids = _encode_answers(answers, part.answers)
            if not grouped:
                datasets.append(
                    make_dataset(
                        part, token_ids, answer_ids, config.batch_size, shuffle, config.seed
                    )
                )
                continue
            # Validation keeps one question per image group: it only measures.
            per_image = config.questions_per_image if shuffle else 1
            datasets.append(
                image_grouped_batches(
                    part,
                    token_ids,
                    answer_ids,
                    config.batch_size,
                    per_image,
                    targets.targets if targets else None,
                    config.seed,
                )
            )
            if shuffle:
                steps_per_epoch = grouped_steps_per_epoch(part, config.batch_size, per_image)
    else:
        if config.input_pipeline == "tfrecord" and held_out:
            raise SimMIMInputError(
                "validation_fraction needs the memory or stream pipeline (TFRecord shards "
                "hold whole splits); put a validation split in its own shards instead"
            )
        datasets = []
        for part, shuffle in (
            ([r for r in records if r["image"] not in held_out], True),
            ([r for r in records if r["image"] in held_out], False),
        ):
            if config.input_pipeline == "stream":
                images = images_from_folder(config.data, part, answers, image_size)
            else:  # answers outside the vocabulary were reported above; the pipeline drops them
                images = images_from_tfrecords(
                    shard_files(config.data, "train"), answers, image_size
                )
            datasets.append(
                make_stream_dataset(
                    images,
                    tokenizer,
                    config.batch_size,
                    shuffle,
                    config.seed,
                    num_questions=len(part),
                )
                if part
                else None
            )
    validation = datasets[1] if held_out else None
    return TrainingData(
        datasets[0],
        validation,
        tokenizer,
        answers,
        image_size,
        num_train,
        steps_per_epoch,
        attribute_sizes,
    )


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


class BestCheckpoint(keras.callbacks.Callback):
    """Writes RUN/best.keras (atomically) and RUN/best.json whenever `monitor` improves."""

    def __init__(self, out_dir, monitor, model_to_save=None):
        super().__init__()
        # The served model when training goes through a wrapper
        # (SimMIMVQATraining); best.json names the monitor as it would read
        # without the wrapper (val_accuracy).
        self.model_to_save = model_to_save
        self.name = monitor.replace("answers_", "")
        self.path = os.path.join(out_dir, "best.keras")
        self.monitor = monitor
        self.best = None
        info = os.path.join(out_dir, "best.json")
        if os.path.isfile(info) and os.path.isfile(self.path):  # a resumed run keeps its best
            with open(info) as f:
                self.best = json.load(f)["value"]

    def _better(self, value):
        if self.best is None:
            return True
        return value > self.best if "accuracy" in self.monitor else value < self.best

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not np.isfinite(value) or not self._better(value):
            return
        self.best = float(value)
        save_atomically(self.model_to_save or self.model, self.path)
        with open(os.path.join(os.path.dirname(self.path), "best.json"), "w") as f:
            json.dump({"epoch": epoch + 1, "monitor": self.name, "value": self.best}, f)


def _with_readable_images(data_dir, records, bad):
    """Records whose image file exists and has a PNG or JPEG header (not decoded)."""
    status = {}
    for r in records:
        if r["image"] not in status:
            path = os.path.join(data_dir, r["image"])
            status[r["image"]] = image_header_problem(path)
            if status[r["image"]]:
                bad(f"{r['_where']}{status[r['image']]}")
    return [r for r in records if not status[r["image"]]]


def _report_skipped(bad, out_dir, num_kept):
    path = os.path.join(out_dir, "skipped_records.txt")
    if not bad.messages:
        if os.path.exists(path):
            os.remove(path)
        return
    with open(path, "w") as f:
        f.write("\n".join(bad.messages) + "\n")
    print(
        f"skipped {len(bad)} bad record(s); training on {num_kept} questions; "
        f"each skipped record and why: {path}\n{bad.summary(limit=5)}"
    )


def save_atomically(model, path):
    tmp = path + ".tmp.keras"
    model.save(tmp)
    os.replace(tmp, path)


def load_run(run_dir):
    """(model, tokenizer, answers) of a finished run."""
    model_path = os.path.join(run_dir, "model.keras")
    if not os.path.isfile(model_path):
        raise SimMIMInputError(f"{run_dir}: no model.keras (not a finished simmim_tf run)")
    model = keras.saving.load_model(model_path)
    tokenizer = QuestionTokenizer.load(os.path.join(run_dir, "tokenizer.json"))
    answers = AnswerVocabulary.load(os.path.join(run_dir, "answers.json"))
    return model, tokenizer, answers


def predict_answers(model, tokenizer, answers, question_set, batch_size=256):
    """The answer the Keras model gives to each question of a `QuestionSet`."""
    token_ids, mask = tokenizer.encode_batch(question_set.questions)
    logits = model.predict(
        {
            "images": question_set.images[question_set.image_index],
            "token_ids": token_ids,
            "padding_mask": mask,
        },
        batch_size=batch_size,
        verbose=0,
    )
    return [answers.answers[i] for i in np.argmax(logits, axis=-1)]


def evaluate(run_dir, data_dir, split="test", batch_size=256):
    """Accuracy per question family of the run's Keras model; writes RUN/eval.json."""
    model, tokenizer, answers = load_run(run_dir)
    question_set = load_split(data_dir, split, image_size=model.backbone.image_size)
    predicted = predict_answers(model, tokenizer, answers, question_set, batch_size)
    result = accuracy_by_family(
        predicted,
        question_set.answers,
        question_set.families,
        question_set.human_answers,
        question_set.question_types,
    )
    with open(os.path.join(run_dir, "eval.json"), "w") as f:
        json.dump({"split": split, "data": data_dir, "accuracy": result}, f, indent=2)
    return result
