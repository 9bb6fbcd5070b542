"""Quantization-aware fine-tuning against plain fine-tuning, for int8.

From one trained run, two copies are fine-tuned for the same steps at the
same learning rate: one plainly, one with 8-bit fake quantization at the
inputs of every Dense and Conv2D (`simmim_tf.export.quantization_aware`).
Each is converted to the package's int8 TFLite model and compared with its
own Keras model on the first N test questions: argmax agreement, and the
accuracy of both. Also measured: how often int8 weights alone (kernels
rounded to their per-channel int8 grid in Keras) change the Keras answer.

    python benchmarks/quantization_aware.py --run demo_out/run \
        --data demo_out/data --steps 600 --questions 1000 \
        --out benchmarks/results/quantization_aware.json
"""

import argparse
import datetime
import json
import os
import platform
import tempfile

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from simmim_tf.data.vqa_dataset import load_split
from simmim_tf.export import quantization_aware as qa
from simmim_tf.export import serving_saved_model, tflite_conversion
from simmim_tf.preprocessing.answer_vocabulary import AnswerVocabulary
from simmim_tf.training.runs import load_run


def keras_probabilities(model, test, ids, mask):
    inputs = {"images": test.images[test.image_index[: len(ids)]], "token_ids": ids}
    inputs["padding_mask"] = mask
    return tf.nn.softmax(model.predict(inputs, batch_size=256, verbose=0)).numpy()


def int8_probabilities(model, tokenizer, answers, samples, test, ids):
    """The int8 model of `model` (the export's own conversion) on the questions."""
    with tempfile.TemporaryDirectory() as scratch:
        serving_saved_model.write_saved_model(model, tokenizer, answers, scratch)
        flatbuffer = tflite_conversion.convert(scratch, "int8", samples)
    runner = Interpreter(model_content=flatbuffer).get_signature_runner()
    images = test.images[test.image_index[: len(ids)]].astype(np.float32)
    return np.concatenate(
        [
            runner(images=images[i : i + 1], token_ids=ids[i : i + 1])["probabilities"]
            for i in range(len(ids))
        ]
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="trained run folder")
    parser.add_argument("--data", required=True, help="its data folder (train and test splits)")
    parser.add_argument("--steps", type=int, default=600, help="fine-tuning steps of each copy")
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--questions", type=int, default=1000, help="test questions compared")
    parser.add_argument("--calibration-size", type=int, default=200)
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()

    model = load_run(args.run)

    tokenizer = model.preprocessor.question_tokenizer()

    answers = AnswerVocabulary(model.preprocessor.answers)
    size = model.backbone.image_size
    test = load_split(args.data, "test", image_size=size)
    n = min(args.questions, len(test))
    ids, mask = tokenizer.encode_batch(test.questions[:n])
    truth = np.array([answers.id(a) if a in answers.answers else -1 for a in test.answers[:n]])
    dataset, _, _ = qa.training_dataset(args.data, tokenizer, answers, size, args.batch_size)
    samples = tflite_conversion.representative_samples(
        args.data, tokenizer, size, args.calibration_size
    )
    batches = qa.calibration_batches(samples)

    def measure(name, model, ranges=None):
        reference = keras_probabilities(model, test, ids, mask)
        lite = int8_probabilities(model, tokenizer, answers, samples, test, ids)
        row = {
            "keras_accuracy": float(np.mean(reference.argmax(-1) == truth)),
            "int8_accuracy": float(np.mean(lite.argmax(-1) == truth)),
            "int8_agreement": float(np.mean(lite.argmax(-1) == reference.argmax(-1))),
        }
        if ranges:
            with qa.fake_quantized_inputs(model, ranges):
                emulated = keras_probabilities(model, test, ids, mask)
            row["int8_agreement_with_fake_quant_keras"] = float(
                np.mean(lite.argmax(-1) == emulated.argmax(-1))
            )
        print(name, json.dumps(row), flush=True)
        return row

    results = {"trained": measure("trained", model)}
    original = keras_probabilities(model, test, ids, mask).argmax(-1)
    snapped = load_run(args.run)
    kernels = qa.snap_weights_to_int8(snapped)
    results["int8_weights_only"] = {
        "kernels": kernels,
        "keras_answer_unchanged": float(
            np.mean(keras_probabilities(snapped, test, ids, mask).argmax(-1) == original)
        ),
    }
    print("int8 weights only", json.dumps(results["int8_weights_only"]), flush=True)

    plain = load_run(args.run)
    qa.fine_tune(plain, dataset, args.steps, args.learning_rate, verbose=2)
    results["fine_tuned"] = measure("fine-tuned", plain)

    aware = load_run(args.run)
    ranges = qa.input_ranges(aware, batches)
    qa.fine_tune(aware, dataset, args.steps, args.learning_rate, ranges=ranges, verbose=2)
    results["quantization_aware"] = measure("quantization-aware", aware, ranges)

    results["setup"] = {
        "command": "python benchmarks/quantization_aware.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None),
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "questions": n,
    }
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
