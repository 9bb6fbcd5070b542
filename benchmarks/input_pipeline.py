"""Does the input pipeline keep the model fed? Questions/s and images/s of
each tf.data pipeline next to what a training step consumes.

For each data set (full Sort-of-CLEVR, 10,000 images at 75×75; CLEVR-2D,
10,000 images at 128×128; both generated if missing, and the generation
timed), iterates one epoch of batches of 64 through each pipeline of
simmim_tf/training/input_pipeline.py without a model:

    memory         images decoded up front (the time is reported too), gathered per batch
    stream         files read and decoded in parallel every epoch
    stream_cached  the same, second epoch, from the in-memory cache
    tfrecord       from DATA/tfrecords shards (written if missing)

then times `model.fit` steps of the tiny and small presets on batches of
the same shape (benchmarks/train_throughput.py) and reports pipeline /
training ratios. Target (issue 3): at least 3x.

    python -m benchmarks.input_pipeline
    python -m benchmarks.input_pipeline --datasets sort_of_clevr --presets tiny

Writes benchmarks/results/input_pipeline.{json,md}.
"""

import argparse
import datetime
import json
import os
import sys
import time

import numpy as np

from benchmarks import train_throughput
from simmim_tf import machine
from simmim_tf.data import clevr2d, sort_of_clevr
from simmim_tf.data.tfrecord_shards import write_shards
from simmim_tf.data.vqa_dataset import load_split, read_questions
from simmim_tf.preprocessing.answer_vocabulary import AnswerVocabulary
from simmim_tf.preprocessing.question_tokenizer import QuestionTokenizer
from simmim_tf.training.input_pipeline import (
    images_from_folder,
    images_from_tfrecords,
    make_dataset,
    make_stream_dataset,
)

HERE = os.path.dirname(os.path.abspath(__file__))
GENERATORS = {"sort_of_clevr": (sort_of_clevr, 75), "clevr2d": (clevr2d, 128)}
BATCH = 64


def epoch_rate(dataset, num_images):
    start = time.perf_counter()
    questions = sum(int(y.shape[0]) for _, y in dataset)
    seconds = time.perf_counter() - start
    return {
        "questions_per_s": questions / seconds,
        "images_per_s": num_images / seconds,
        "seconds": seconds,
        "questions": questions,
    }


def pipelines(data_dir, image_size):
    records = [r for r in read_questions(data_dir) if r["split"] == "train"]
    tokenizer = QuestionTokenizer.fit([r["question"] for r in records], 16)
    answers = AnswerVocabulary.fit([r["answer"] for r in records])
    num_images = len({r["image"] for r in records})
    results = {}

    start = time.perf_counter()
    train = load_split(data_dir, "train")
    decode_s = time.perf_counter() - start
    ids, _ = tokenizer.encode_batch(train.questions)
    answer_ids = np.array([answers.id(a) for a in train.answers], np.int32)
    results["memory"] = epoch_rate(make_dataset(train, ids, answer_ids, BATCH, True), num_images)
    results["memory"]["upfront_decode_s"] = decode_s

    results["stream"] = epoch_rate(
        make_stream_dataset(
            images_from_folder(data_dir, records, answers, image_size), tokenizer, BATCH, True
        ),
        num_images,
    )
    cached = make_stream_dataset(
        images_from_folder(data_dir, records, answers, image_size),
        tokenizer,
        BATCH,
        True,
        cache=True,
    )
    epoch_rate(cached, num_images)  # first epoch fills the cache
    results["stream_cached"] = epoch_rate(cached, num_images)

    shards = os.path.join(data_dir, "tfrecords")
    if not os.path.isdir(shards):
        write_shards(data_dir, "train", num_shards=8)
    files = sorted(os.path.join(shards, f) for f in os.listdir(shards) if f.startswith("train-"))
    results["tfrecord"] = epoch_rate(
        make_stream_dataset(
            images_from_tfrecords(files, answers, image_size), tokenizer, BATCH, True
        ),
        num_images,
    )
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="sort_of_clevr,clevr2d")
    parser.add_argument("--presets", default="tiny,small")
    parser.add_argument("--train-steps", type=int, default=20)
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    args = parser.parse_args()

    result = {
        "date": datetime.date.today().isoformat(),
        "machine": machine.describe(),
        "command": "python " + " ".join(sys.argv),
        "batch_size": BATCH,
        "datasets": {},
    }
    for name in args.datasets.split(","):
        generator, image_size = GENERATORS[name]
        data_dir = os.path.join(HERE, "data", name)
        entry = {"image_size": image_size}
        if not os.path.isfile(os.path.join(data_dir, "questions.jsonl")):
            start = time.perf_counter()
            generator.generate(data_dir, 10000, seed=0)
            entry["generate_10000_images_s"] = time.perf_counter() - start
        entry["pipelines"] = pipelines(data_dir, image_size)
        train_throughput.IMAGE_SIZE = image_size
        entry["training"] = {
            preset: train_throughput.measure(preset, "float32", False, BATCH, args.train_steps)[
                "questions_per_s"
            ]
            for preset in args.presets.split(",")
        }
        result["datasets"][name] = entry
        print(json.dumps(entry, indent=1))

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "input_pipeline.json"), "w") as f:
        json.dump(result, f, indent=2)
    lines = [
        f"Input pipeline vs training step, batch {BATCH} ({result['date']}, {result['machine']})",
        "",
    ]
    for name, entry in result["datasets"].items():
        training = entry["training"]
        header = " | ".join(f"× {p} training" for p in training)
        lines += [
            f"{name} ({entry['image_size']}×{entry['image_size']}), training consumes "
            + ", ".join(f"{p} {q:.0f} q/s" for p, q in training.items())
            + (
                f"; generating 10,000 images took {entry['generate_10000_images_s']:.0f} s"
                if "generate_10000_images_s" in entry
                else ""
            ),
            "",
            f"| pipeline | questions/s | images/s | {header} |",
            "|---|---|---|" + "---|" * len(training),
        ]
        for pipeline, r in entry["pipelines"].items():
            ratios = " | ".join(f"{r['questions_per_s'] / q:.1f}×" for q in training.values())
            lines.append(
                f"| {pipeline} | {r['questions_per_s']:.0f} | {r['images_per_s']:.0f} | {ratios} |"
            )
        if "upfront_decode_s" in entry["pipelines"].get("memory", {}):
            lines.append(
                f"\nmemory decodes every image once up front: "
                f"{entry['pipelines']['memory']['upfront_decode_s']:.1f} s."
            )
        lines.append("")
    with open(os.path.join(args.out, "input_pipeline.md"), "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
