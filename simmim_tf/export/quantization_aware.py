"""Quantization-aware fine-tuning with Keras's fake-quant ops.

Once LayerNorm is kept in float, what separates the int8 model's answers
from Keras's is the 8-bit inputs of its matrix products (docs/export.md, "int8 and
the 99% agreement target"). So the fake quantization goes where TFLite
quantizes those inputs: before every `Dense` and `Conv2D`, per tensor, 8
bits over the range that the converter's calibration records on the same
representative samples. Gradients pass straight through inside the range
(the op's own gradient). `benchmarks/quantization_aware.py` compares it with
plain fine-tuning; docs/export.md has the result.

Nothing here changes the saved model: the fake-quant ops live in a
`with fake_quantized_inputs(...)` block and are gone after it, so the
fine-tuned model saves, loads and converts like any other.
"""

import contextlib
import json
import os
import shutil

import keras
import numpy as np

from simmim_tf.errors import SimMIMInputError

QUANTIZED_LAYERS = (keras.layers.Dense, keras.layers.Conv2D)


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


def input_ranges(model, batches):
    """{layer path: (min, max)} of each quantized layer's input over `batches`
    (model input dicts), as min/max calibration records them. Eager."""
    lows, highs = {}, {}

    def recording(layer, call):
        def record(inputs, *args, **kwargs):
            x = keras.ops.convert_to_numpy(inputs)
            lows[layer.path] = min(lows.get(layer.path, np.inf), float(x.min()))
            highs[layer.path] = max(highs.get(layer.path, -np.inf), float(x.max()))
            return call(inputs, *args, **kwargs)

        return record

    with _wrapped_calls(quantized_layers(model), recording):
        for batch in batches:
            model(batch, training=False)
    if not lows:
        raise ValueError("no calibration batch reached a Dense or Conv2D layer")
    return {path: (lows[path], highs[path]) for path in lows}


@contextlib.contextmanager
def fake_quantized_inputs(model, ranges, num_bits=8):
    """Within the block, each quantized layer sees its input fake-quantized
    to `num_bits` over `ranges[layer.path]` (from `input_ranges`)."""
    layers = quantized_layers(model)
    missing = [layer.path for layer in layers if layer.path not in ranges]
    if missing:
        raise ValueError(f"no calibrated range for {missing}")

    def quantizing(layer, call):
        # TFLite's ranges always hold 0 (its zero point is an integer).
        low, high = min(ranges[layer.path][0], 0.0), max(ranges[layer.path][1], 0.0)

        def fake_quant(inputs, *args, **kwargs):
            quantized = keras.quantizers.fake_quant_with_min_max_vars(
                inputs, low, high, num_bits=num_bits
            )
            return call(quantized, *args, **kwargs)

        return fake_quant

    try:
        with _wrapped_calls(layers, quantizing):
            yield
    finally:
        # model.fit / predict keep their traced functions: drop the ones
        # traced with fake quantization.
        model.train_function = model.predict_function = model.test_function = None


def fine_tune(model, dataset, steps, learning_rate, ranges=None, verbose="auto"):
    """`steps` steps of the model's default training (`compile()`) on
    `dataset` at a constant `learning_rate`; with `ranges`, under
    `fake_quantized_inputs`. Returns the mean training loss over the steps."""
    model.compile(learning_rate=learning_rate)
    block = fake_quantized_inputs(model, ranges) if ranges else contextlib.nullcontext()
    with block:
        history = model.fit(
            dataset.repeat(), steps_per_epoch=steps, epochs=1, verbose=verbose, shuffle=False
        )
    return float(history.history["loss"][-1])


def snap_weights_to_int8(model):
    """Rounds every Dense and Conv2D kernel to its per-output-channel int8
    grid (symmetric, narrow range, as the converter quantizes weights).
    Returns how many kernels it changed. For measuring what int8 weights
    alone cost."""
    count = 0
    for layer in quantized_layers(model):
        kernel = layer.kernel
        w = keras.ops.convert_to_numpy(kernel)
        bound = np.maximum(np.abs(w.reshape(-1, w.shape[-1])).max(axis=0), 1e-12)
        kernel.assign(
            keras.quantizers.fake_quant_with_min_max_vars(
                w, -bound, bound, num_bits=8, narrow_range=True, axis=-1
            )
        )
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


def training_dataset(data_dir, tokenizer, answers, image_size, batch_size):
    """(shuffled tf.data batches, questions kept, questions left out) of the
    training split, for fine-tuning a run. Questions whose answer the run
    cannot give (a run trained with --max-answers) are left out, and counted."""
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
    dataset = make_dataset(train, token_ids, answer_ids, batch_size, shuffle=True)
    return dataset, len(train), skipped


def fine_tune_run(
    run_dir,
    out_dir,
    data_dir=None,
    steps=600,
    learning_rate=1e-4,
    batch_size=64,
    calibration_size=200,
    verbose="auto",
):
    """A quantization-aware copy of a run: RUN's model fine-tuned `steps`
    steps under `fake_quantized_inputs`, written with RUN's preprocessor
    and config to `out_dir`, a run folder (preset) that `simmim-tf export`
    takes. The ranges come from the same calibration questions the export
    uses. Returns what it wrote to OUT/quantization_aware.json."""
    # Imported here: the training stack is not needed to apply the context.
    from simmim_tf.export.tflite_conversion import representative_samples
    from simmim_tf.preprocessing.answer_vocabulary import AnswerVocabulary
    from simmim_tf.training.run_config import RunConfig
    from simmim_tf.training.runs import load_run, save_preset_atomically

    if os.path.abspath(run_dir) == os.path.abspath(out_dir):
        raise SimMIMInputError(f"--out {out_dir}: give a new folder, not the run itself")
    model = load_run(run_dir)
    tokenizer = model.preprocessor.question_tokenizer()
    answers = AnswerVocabulary(model.preprocessor.answers)
    data_dir = data_dir or RunConfig.load(os.path.join(run_dir, "run_config.json")).data
    size = model.backbone.image_size
    dataset, num_questions, skipped = training_dataset(
        data_dir, tokenizer, answers, size, batch_size
    )
    samples = representative_samples(data_dir, tokenizer, size, calibration_size)
    ranges = input_ranges(model, calibration_batches(samples))
    loss = fine_tune(model, dataset, steps, learning_rate, ranges=ranges, verbose=verbose)
    os.makedirs(out_dir, exist_ok=True)
    shutil.copyfile(
        os.path.join(run_dir, "run_config.json"), os.path.join(out_dir, "run_config.json")
    )
    save_preset_atomically(model, out_dir)
    record = {
        "from_run": os.path.abspath(run_dir),
        "data": data_dir,
        "steps": steps,
        "learning_rate": learning_rate,
        "batch_size": batch_size,
        "training_questions": num_questions,
        "left_out_questions": skipped,
        "calibration_questions": len(samples),
        "fake_quantized_layers": len(ranges),
        "loss": loss,
    }
    with open(os.path.join(out_dir, "quantization_aware.json"), "w") as f:
        json.dump(record, f, indent=1)
    return record
