"""How closely the exported TFLite models follow the Keras model.

For the first N test questions of a data folder, compares each .tflite's
answer probabilities with the Keras model's: argmax agreement and the largest
absolute probability difference, and the median latency of one call on 1
thread. With --float-ops, the int8 model is first
converted again with that list of ops kept in float (the export's default is
ONE_HOT; an empty string gives a fully integer model), so that the effect of
the list can be measured.

    python benchmarks/tflite_agreement.py --run demo_out/run \
        --export demo_out/export --data demo_out/data --questions 300
"""

import argparse
import json
import os
import tempfile
import time

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from simmim_tf.data.vqa_dataset import load_split
from simmim_tf.export import litert_exporter
from simmim_tf.training.vqa_trainer import load_run


def median_ms(path, images, ids, runs=60, warmup=10):
    """Median time of one call on 1 thread (model only, no tokenisation)."""
    runner = Interpreter(path, num_threads=1).get_signature_runner()
    times = []
    for _ in range(warmup + runs):
        start = time.perf_counter()
        runner(images=images[:1].astype(np.float32), token_ids=ids[:1])
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times[warmup:]))


def tflite_probabilities(path, images, ids):
    runner = Interpreter(path).get_signature_runner()
    return np.concatenate(
        [
            runner(images=images[i : i + 1].astype(np.float32), token_ids=ids[i : i + 1])[
                "probabilities"
            ]
            for i in range(len(ids))
        ]
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="trained run folder")
    parser.add_argument("--export", required=True, help="folder written by simmim-tf export")
    parser.add_argument("--data", required=True, help="data folder (its test split is used)")
    parser.add_argument("--questions", type=int, default=300)
    parser.add_argument(
        "--float-ops",
        default=None,
        help="re-convert int8 keeping these comma-separated ops in float ('' for none)",
    )
    args = parser.parse_args()

    model, tokenizer, _ = load_run(args.run)
    test = load_split(args.data, "test", image_size=model.backbone.image_size)
    n = min(args.questions, len(test))
    ids, mask = tokenizer.encode_batch(test.questions[:n])
    images = test.images[test.image_index[:n]]
    reference = tf.nn.softmax(
        model.predict({"images": images, "token_ids": ids, "padding_mask": mask}, verbose=0)
    ).numpy()

    paths = {
        v: os.path.join(args.export, f"model_{v}.tflite")
        for v in litert_exporter.VARIANTS
        if os.path.isfile(os.path.join(args.export, f"model_{v}.tflite"))
    }
    if args.float_ops is not None:
        litert_exporter.FLOAT_OPS_IN_INT8 = tuple(o for o in args.float_ops.split(",") if o)
        samples = litert_exporter.representative_samples(
            json.load(open(os.path.join(args.run, "run_config.json")))["data"],
            tokenizer,
            model.backbone.image_size,
            200,
        )
        flatbuffer = litert_exporter.convert(
            os.path.join(args.export, "saved_model"), "int8", samples
        )
        paths["int8"] = os.path.join(tempfile.mkdtemp(), "model_int8.tflite")
        open(paths["int8"], "wb").write(flatbuffer)

    print(
        f"{n} test questions of {args.data}; int8 float ops: "
        f"{litert_exporter.FLOAT_OPS_IN_INT8 or 'none'}"
    )
    top2 = np.sort(reference, axis=-1)[:, -2:]
    decisive = (top2[:, 1] - top2[:, 0]) >= 0.1
    print(f"Keras's top two answers are within 0.1 of each other on {1 - decisive.mean():.0%}")
    print(
        "| variant | argmax agreement | where Keras's top-2 margin >= 0.1 | max abs prob. diff. "
        "| ms, 1 thread |"
    )
    print("|---|---|---|---|---|")
    for variant, path in paths.items():
        probs = tflite_probabilities(path, images, ids)
        same = probs.argmax(-1) == reference.argmax(-1)
        print(
            f"| {variant} | {same.mean():.1%} | {same[decisive].mean():.1%} "
            f"| {np.max(np.abs(probs - reference)):.4f} | {median_ms(path, images, ids):.2f} |"
        )


if __name__ == "__main__":
    main()
