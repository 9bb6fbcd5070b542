"""Quantization-aware fine-tuning: 8-bit fake quantization where TFLite's
int8 model quantizes, with ranges that reach the converter.

Two scopes, compared in docs/export.md ("Quantization-aware fine-tuning"):

- `matmul_inputs`: the input of every `Dense` and `Conv2D`, the first
  version (the int8 model's matrix-product inputs).
- `converter` (default): every tensor the int8 converter quantizes that the
  model can name: each layer's outputs (residual sums are block outputs),
  each `Dense`/`Conv2D` input and pre-activation, and the quantization
  points layers mark inside themselves (LayerNorm's intermediates, attention
  scores and weights; `simmim_tf.layers.quantization_points`). While
  training, kernels are also fake-quantized per output channel (symmetric,
  narrow range), as the converter quantizes weights.

Ranges are calibrated once, before fine-tuning, by min/max over the export's
own calibration questions (what the converter records), and stay fixed.
Keys are `"<layer path>/<tensor>"`. `emulated_int8` applies them only inside
its `with` block; a run fine-tuned this way keeps its ranges in
`quantization_ranges.json`, and `simmim-tf export` traces the int8 model's
SavedModel inside the block, so the fake-quant ops reach the converter,
which takes their ranges instead of its own calibration's
(`convert_with_ranges`). Nothing here changes the saved weights' format.
"""

import contextlib
import json
import os
import shutil

import keras
import numpy as np
from keras import ops

from simmim_tf.atomic_files import write_atomically
from simmim_tf.errors import SimMIMInputError
from simmim_tf.export.serving_saved_model import write_saved_model
from simmim_tf.layers.multi_input_dense import MultiInputDense
from simmim_tf.layers.quantization_points import quantization_handler

QUANTIZED_LAYERS = (keras.layers.Dense, keras.layers.Conv2D)
# Their outputs are not fake-quantized: the converter folds batch norm into
# the convolution before it and fuses the ReLU after, so the int8 model has
# one tensor (the ReLU's output) where Keras has three, and a fake-quant op
# in between would stop the folding.
# Dropout is the identity in the int8 model: its output is its input.
FUSED_OUTPUT_LAYERS = (keras.layers.Conv2D, keras.layers.BatchNormalization, keras.layers.Dropout)
SCOPES = ("converter", "matmul_inputs")
PLAIN = "none"  # fine_tune_run's scope for plain fine-tuning, the comparison
# What fine-tuning minimises: `answer`, the answer loss on plain question
# batches (the first version); `training`, the training's own losses on its
# image-grouped batches (`SimMIMVQATraining`: the anchor loss too, where the
# model has relational attention and the data has scenes); `distill`, the
# cross-entropy to the float model's own answer distribution (the run as
# trained, a frozen copy) on plain question batches: the fake-quantized
# model learns to give the float model's answers, not to move away from them.
LOSSES = ("answer", "training", "distill")
RANGES_FILE = "quantization_ranges.json"


def quantized_layers(model):
    """The layers whose inputs TFLite's int8 model holds in 8 bits."""
    return [layer for layer in model._flatten_layers() if isinstance(layer, QUANTIZED_LAYERS)]


@contextlib.contextmanager
def _wrapped_calls(layers, make_call):
    """Replaces each layer's `call` by `make_call(layer, original)` for the block."""
    for layer in layers:
        object.__setattr__(layer, "call", make_call(layer, layer.call))
    try:
        yield
    finally:
        for layer in layers:
            object.__delattr__(layer, "call")  # back to the class's method


def _under(path, prefixes):
    """Whether `path` is one of `prefixes` or lies below one ("a/b" is under "a")."""
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in prefixes)


def _is_float(x):
    return hasattr(x, "dtype") and "float" in str(keras.backend.standardize_dtype(x.dtype))


def _is_linear(activation):
    return activation is None or activation is keras.activations.linear


def input_keys(layer, scope):
    """The keys of a `Dense`/`Conv2D`'s input tensors in `scope`: one, or for
    a `MultiInputDense` one per input (each its own int8 tensor)."""
    if isinstance(layer, MultiInputDense):
        return [f"{layer.path}/input_{i}" for i in range(len(layer.kernel_parts(layer.kernel)))]
    return [layer.path if scope == "matmul_inputs" else f"{layer.path}/input"]


def _quantized_inputs(layer, inputs, scope, point):
    """`inputs` (one tensor, or a `MultiInputDense`'s list) through `point`."""
    keys = input_keys(layer, scope)
    if isinstance(layer, MultiInputDense):
        return [point(key, x, None) for key, x in zip(keys, inputs, strict=True)]
    return point(keys[0], inputs, None)


def _matmul_call(layer, x, kernel, point):
    """`Dense`/`Conv2D`'s forward pass with `kernel`, the pre-activation
    through `point` (and a `MultiInputDense`'s partial products)."""
    if isinstance(layer, MultiInputDense):
        y = layer.project(x, kernel, lambda i, p: point(f"{layer.path}/product_{i}", p, None))
    elif isinstance(layer, keras.layers.Conv2D):
        y = layer.convolution_op(x, kernel)
        if layer.use_bias:
            shape = (1, 1, 1, -1) if layer.data_format == "channels_last" else (1, -1, 1, 1)
            y = y + ops.reshape(layer.bias, shape)
    else:
        y = ops.matmul(x, kernel)
        if layer.use_bias:
            y = y + layer.bias
    if _is_linear(layer.activation):
        return y
    return layer.activation(point(f"{layer.path}/pre_activation", y, None))


def _per_channel_int8(layer, kernel):
    """`layer`'s `kernel` fake-quantized per output channel, symmetric,
    narrow range (the converter's weight quantization; a `MultiInputDense`'s
    rows for each input apart, as the converter sees them); straight-through
    gradient."""
    if isinstance(layer, MultiInputDense):
        parts = layer.kernel_parts(kernel)
        return ops.concatenate([_per_channel_int8(None, part) for part in parts], axis=0)
    flat = ops.reshape(kernel, (-1, ops.shape(kernel)[-1]))
    bound = ops.stop_gradient(ops.maximum(ops.max(ops.abs(flat), axis=0), 1e-12))
    return keras.quantizers.fake_quant_with_min_max_vars(
        kernel, -bound, bound, num_bits=8, narrow_range=True, axis=-1
    )


@contextlib.contextmanager
def _tensor_handler(model, scope, point, weights=False, float_prefixes=()):
    """Routes each tensor of `scope` through `point(key, tensor)` for the
    block; the kernels of layers under one of `float_prefixes` stay float
    even with `weights`."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; choose from {SCOPES}")
    matmuls = quantized_layers(model)
    if scope == "matmul_inputs":

        def make_call(layer, call):
            def quantized(inputs, *args, **kwargs):
                return call(_quantized_inputs(layer, inputs, scope, point), *args, **kwargs)

            return quantized

        with _wrapped_calls(matmuls, make_call):
            yield
        return

    def make_call(layer, call):
        def quantized(*args, **kwargs):
            if layer in matmul_set:
                x = _quantized_inputs(layer, args[0], scope, point)
                quantize = weights and not _under(layer.path, float_prefixes)
                kernel = _per_channel_int8(layer, layer.kernel) if quantize else layer.kernel
                outputs = _matmul_call(layer, x, kernel, point)
            else:
                outputs = call(*args, **kwargs)
            if isinstance(layer, FUSED_OUTPUT_LAYERS):
                return outputs
            flat = keras.tree.flatten(outputs)
            flat = [
                point(f"{layer.path}/output_{i}", x, None) if _is_float(x) else x
                for i, x in enumerate(flat)
            ]
            return keras.tree.pack_sequence_as(outputs, flat)

        return quantized

    matmul_set = set(matmuls)
    # The preprocessor runs in the input pipeline, not in the int8 model (and
    # its float outputs, distillation's soft targets, have no range).
    preprocessing = getattr(model, "preprocessor", None)
    outside = set(preprocessing._flatten_layers()) if preprocessing is not None else set()
    layers = [layer for layer in model._flatten_layers(include_self=False) if layer not in outside]
    with quantization_handler(point), _wrapped_calls(layers, make_call):
        yield


def tensor_ranges(model, batches, scope="converter"):
    """{key: (min, max)} of each tensor of `scope` over `batches` (model
    input dicts), as the converter's min/max calibration records them. Eager."""
    lows, highs = {}, {}

    def record(key, x, fixed_range=None):
        if fixed_range is not None:
            lows[key], highs[key] = fixed_range
            return x
        values = keras.ops.convert_to_numpy(x)
        lows[key] = min(lows.get(key, np.inf), float(values.min()))
        highs[key] = max(highs.get(key, -np.inf), float(values.max()))
        return x

    with _tensor_handler(model, scope, record):
        for batch in batches:
            model(batch, training=False)
    if not lows:
        raise ValueError("no calibration batch reached a quantized tensor")
    return {key: (lows[key], highs[key]) for key in lows}


@contextlib.contextmanager
def emulated_int8(model, ranges, scope="converter", weights=True, num_bits=8, float_prefixes=()):
    """Within the block, each tensor of `scope` is fake-quantized to
    `num_bits` over `ranges[key]` (from `tensor_ranges`); with `weights`
    (and scope `converter`), the kernels too. A tensor without a range
    raises: the ranges come from another model or another scope.

    float_prefixes: keys (and, for the kernels, layer paths) equal to or
    under one of these ("a" covers "a/b") stay float and need no range: the
    part of the model kept out of int8, for finding where int8 loses
    accuracy (`benchmarks/int8_sensitivity.py`)."""
    float_prefixes = tuple(float_prefixes)
    if scope == "matmul_inputs":
        missing = [
            key
            for layer in quantized_layers(model)
            for key in input_keys(layer, scope)
            if key not in ranges and not _under(layer.path, float_prefixes)
        ]
        if missing:
            raise ValueError(f"no calibrated range for {missing}")

    def fake_quant(key, x, fixed_range=None):
        if float_prefixes and _under(key, float_prefixes):
            return x
        if fixed_range is None and key not in ranges:
            raise SimMIMInputError(
                f"no calibrated range for {key}: the ranges ({RANGES_FILE}) are of another "
                "model or scope"
            )
        # TFLite's ranges always hold 0 (its zero point is an integer).
        low, high = fixed_range or (min(ranges[key][0], 0.0), max(ranges[key][1], 0.0))
        if high - low < 1e-12:
            return x  # a constant zero tensor: the converter's range is degenerate too
        return keras.quantizers.fake_quant_with_min_max_vars(x, low, high, num_bits=num_bits)

    try:
        with _tensor_handler(model, scope, fake_quant, weights, float_prefixes):
            yield
    finally:
        # model.fit / predict keep their traced functions: drop the ones
        # traced with fake quantization.
        model.train_function = model.predict_function = model.test_function = None


def fine_tune(
    model,
    dataset,
    steps,
    learning_rate,
    ranges=None,
    scope="converter",
    verbose="auto",
    trainer=None,
    soft_targets=False,
):
    """`steps` steps of the model's default training (`compile()`) on
    `dataset` at a constant `learning_rate`; with `ranges`, under
    `emulated_int8`. With `trainer` (a `SimMIMVQATraining` around `model`),
    the trainer is fitted instead, with its own losses; both with the
    model's default optimizer. With `soft_targets`, the dataset's targets
    are answer distributions (`distillation_targets`): cross-entropy to
    them, and the share of argmax agreement as the metric. Returns the
    training loss over the steps."""
    # Adam's beta_2 at Keras's 0.999, the value the 6,000-step recipe was
    # measured with (docs/export.md); training's default is 0.95.
    optimizer = model.default_optimizer(learning_rate, beta_2=0.999)
    if soft_targets:
        model.compile(
            optimizer=optimizer,
            loss=keras.losses.CategoricalCrossentropy(from_logits=True),
            metrics=[keras.metrics.CategoricalAccuracy(name="agreement")],
        )
    elif trainer is None:
        model.compile(optimizer=optimizer)
    else:
        trainer.compile(optimizer)
    fitted = trainer or model
    block = emulated_int8(model, ranges, scope) if ranges else contextlib.nullcontext()
    with block:
        history = fitted.fit(
            dataset.repeat(), steps_per_epoch=steps, epochs=1, verbose=verbose, shuffle=False
        )
    return float(history.history["loss"][-1])


def distillation_targets(dataset, teacher):
    """`dataset`'s (inputs, answer ids) batches with the answer ids replaced
    by `teacher`'s answer probabilities for the same inputs (float32)."""

    def soften(inputs, answer_ids):
        del answer_ids  # the teacher's distribution carries what is learnt
        return inputs, ops.softmax(ops.cast(teacher(inputs, training=False), "float32"))

    return dataset.map(soften)


def write_saved_model_with_ranges(model, ranges, scope, tokenizer, answers, path):
    """The conversion source SavedModel (`serving_saved_model`), traced with
    the fake-quant ops of `ranges` in the graph (weights left float: the
    converter quantizes them per channel itself)."""
    with emulated_int8(model, ranges, scope, weights=False):
        write_saved_model(model, tokenizer, answers, path)


def save_ranges(folder, ranges, scope):
    with open(os.path.join(folder, RANGES_FILE), "w") as f:
        json.dump({"scope": scope, "ranges": {k: list(v) for k, v in ranges.items()}}, f)


def load_ranges(folder):
    """(ranges, scope) saved by a quantization-aware run, or None."""
    path = os.path.join(folder, RANGES_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        record = json.load(f)
    return {k: tuple(v) for k, v in record["ranges"].items()}, record["scope"]


def snap_weights_to_int8(model):
    """Rounds every Dense and Conv2D kernel to its per-output-channel int8
    grid (symmetric, narrow range, as the converter quantizes weights).
    Returns how many kernels it changed. For measuring what int8 weights
    alone cost."""
    count = 0
    for layer in quantized_layers(model):
        layer.kernel.assign(_per_channel_int8(layer, layer.kernel))
        count += 1
    return count


def calibration_batches(samples, batch_size=50):
    """Model input dicts from `tflite_conversion.representative_samples`."""
    batches = []
    for i in range(0, len(samples), batch_size):
        chunk = samples[i : i + batch_size]
        ids = np.concatenate([s["token_ids"] for s in chunk])
        batches.append(
            {
                "images": np.concatenate([s["images"] for s in chunk]),
                "token_ids": ids,
                "padding_mask": ids != 0,
            }
        )
    return batches


def training_dataset(data_dir, tokenizer, answers, image_size, batch_size, model=None):
    """(shuffled tf.data batches, questions kept, questions left out,
    trainer) of the training split, for fine-tuning a run. Questions whose
    answer the run cannot give (a run trained with --max-answers) are left
    out, and counted.

    Without `model`: plain question batches for the model itself, trainer
    None. With `model`: the training's image-grouped batches (4 questions
    per image) and a `SimMIMVQATraining` around `model`, with the anchor
    loss where the model has relational attention and the data has scenes
    (the grounding loss is left out: its head is not part of a saved run)."""
    from simmim_tf.data.vqa_dataset import load_split
    from simmim_tf.training.input_pipeline import make_dataset

    train = load_split(data_dir, "train", image_size=image_size)
    known = [a in answers.answers for a in train.answers]
    skipped = len(known) - sum(known)
    if skipped:
        train = train.subset(known)
        print(f"{skipped} training question(s) with answers outside the run's list left out")
    token_ids, _ = tokenizer.encode_batch(train.questions)
    answer_ids = np.array([answers.id(a) for a in train.answers], np.int32)
    if model is None:
        dataset = make_dataset(train, token_ids, answer_ids, batch_size, shuffle=True)
        return dataset, len(train), skipped, None
    from simmim_tf.data.anchor_targets import anchor_targets
    from simmim_tf.models.simmim_vqa_training import SimMIMVQATraining
    from simmim_tf.training.image_grouped_batches import image_grouped_batches
    from simmim_tf.training.training_data import has_scenes

    backbone = model.backbone
    anchors = None
    if backbone.relational and has_scenes(data_dir):
        anchors = anchor_targets(
            data_dir,
            train,
            backbone.grid_shape,
            backbone.patch_size,
            num_anchors=backbone.relational["num_anchors"],
        )
    dataset = image_grouped_batches(
        train, token_ids, answer_ids, batch_size, anchor_targets=anchors
    )
    # Without the grounding loss, refined positions stay as trained: what
    # fine-tuning for the converter should do.
    trainer = SimMIMVQATraining(model, anchor_weight=1.0 if anchors is not None else 0.0)
    return dataset, len(train), skipped, trainer


def fine_tune_run(
    run_dir,
    out_dir,
    data_dir=None,
    steps=6000,
    learning_rate=2e-5,
    batch_size=64,
    calibration_size=200,
    scope="converter",
    verbose="auto",
    losses="answer",
):
    """A quantization-aware copy of a run: RUN's model fine-tuned `steps`
    steps under `emulated_int8`, written with RUN's preprocessor and config
    to `out_dir`, a run folder (preset) that `simmim-tf export` takes, with
    the ranges in OUT/quantization_ranges.json (scope `converter`: the export
    hands them to the converter; `none`: plain fine-tuning). The ranges come
    from the same calibration questions the export uses. `losses`: one of
    `LOSSES`. Returns what it wrote to OUT/quantization_aware.json."""
    # Imported here: the training stack is not needed to apply the context.
    from simmim_tf.training.run_config import RunConfig
    from simmim_tf.training.runs import load_run

    if os.path.abspath(run_dir) == os.path.abspath(out_dir):
        raise SimMIMInputError(f"--out {out_dir}: give a new folder, not the run itself")
    if losses not in LOSSES:
        raise SimMIMInputError(f"losses {losses!r}: choose from {LOSSES}")
    model = load_run(run_dir)
    data_dir = data_dir or RunConfig.load(os.path.join(run_dir, "run_config.json")).data
    dataset, num_questions, skipped, trainer, samples = _fine_tuning_data(
        model, run_dir, data_dir, batch_size, calibration_size, losses
    )
    ranges = None
    if scope != PLAIN:
        ranges = tensor_ranges(model, calibration_batches(samples), scope)
    distill = losses == "distill"
    kwargs = {"verbose": verbose, "trainer": trainer, "soft_targets": distill}
    loss = fine_tune(model, dataset, steps, learning_rate, ranges, scope, **kwargs)
    _write_fine_tuned(model, run_dir, out_dir, ranges if scope == "converter" else None)
    record = {
        "from_run": os.path.abspath(run_dir),
        "data": data_dir,
        "steps": steps,
        "learning_rate": learning_rate,
        "batch_size": batch_size,
        "training_questions": num_questions,
        "left_out_questions": skipped,
        "calibration_questions": len(samples),
        "scope": scope,
        "losses": losses,
        "anchor_loss": bool(trainer is not None and trainer.anchor_weight),
        "fake_quantized_tensors": len(ranges or ()),
        "loss": loss,
    }
    write_atomically(os.path.join(out_dir, "quantization_aware.json"), json.dumps(record, indent=1))
    return record


def _fine_tuning_data(model, run_dir, data_dir, batch_size, calibration_size, losses):
    """(dataset, questions, questions left out, trainer, calibration samples)
    for `fine_tune_run`: the training split in the run's vocabularies, with
    the run's own answers as soft targets for `distill`, and the export's
    calibration questions."""
    from simmim_tf.export.tflite_conversion import representative_samples
    from simmim_tf.preprocessing.answer_vocabulary import AnswerVocabulary
    from simmim_tf.training.runs import load_run

    tokenizer = model.preprocessor.question_tokenizer()
    answers = AnswerVocabulary(model.preprocessor.answers)
    size = model.backbone.image_size
    dataset, num_questions, skipped, trainer = training_dataset(
        data_dir, tokenizer, answers, size, batch_size, model if losses == "training" else None
    )
    if losses == "distill":
        dataset = distillation_targets(dataset, load_run(run_dir))
    samples = representative_samples(data_dir, tokenizer, size, calibration_size)
    return dataset, num_questions, skipped, trainer, samples


def _write_fine_tuned(model, run_dir, out_dir, ranges):
    """OUT as a run folder: RUN's config, the fine-tuned preset and, for
    the converter, the ranges."""
    from simmim_tf.training.runs import save_preset_atomically

    os.makedirs(out_dir, exist_ok=True)
    shutil.copyfile(
        os.path.join(run_dir, "run_config.json"), os.path.join(out_dir, "run_config.json")
    )
    save_preset_atomically(model, out_dir)
    if ranges is not None:
        save_ranges(out_dir, ranges, "converter")
