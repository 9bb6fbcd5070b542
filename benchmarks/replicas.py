"""Two replicas against one device at equal steps: does the full recipe
(answer, grounding and anchor losses) train as well under MirroredStrategy?

Trains the `tiny` preset with `simmim-tf train`'s own code on the same data,
seed and global batch (64) for the same number of epochs (so the same steps),
each arm in a fresh process (logical devices must be set before TensorFlow
starts), and measures each on the test split:

    one_device              the default path: image-grouped batches (one
                            question per image here) on one device
    one_device_per_example  one device fed as a replica is: one question
                            with its image per example (`make_dataset`)
    mirrored                MirroredStrategy over two logical CPU devices
                            (image-grouped batches need one replica, so
                            one question with its image per example)
    mirrored_keras_clipping the same with Keras's own AdamW, which clips
                            each replica's half of the gradient before the
                            sum (the library's `SumThenClip` sums first)

    python -m benchmarks.replicas --data demo_out/data --epochs 6 \\
        --out benchmarks/results/replicas/replicas_seed0.json

An arm whose run folder holds its results (history.json, eval.json) is not
trained again, so a killed benchmark resumes. With `taskset -c N` the two
logical devices share one core: slower, the same steps.
"""

import argparse
import json
import os
import subprocess
import sys
import time

from simmim_tf import machine

ARMS = {"one_device": 1, "one_device_per_example": 1, "mirrored": 2, "mirrored_keras_clipping": 2}


def train_one(args):
    """In this process: set the logical devices, train, evaluate."""
    import tensorflow as tf

    replicas = ARMS[args.arm]
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * replicas
    )
    from simmim_tf.training import vqa_trainer
    from simmim_tf.training.run_config import RunConfig
    from simmim_tf.training.run_evaluation import evaluate

    if args.arm == "one_device_per_example":
        grouped_or_not = vqa_trainer.training_data
        vqa_trainer.training_data = lambda config, bad, grouped: grouped_or_not(config, bad, False)
    if args.arm == "mirrored_keras_clipping":
        import keras

        from simmim_tf.models import SimMIMVQA

        SimMIMVQA.default_optimizer = staticmethod(
            lambda learning_rate=1e-3, beta_2=0.95: keras.optimizers.AdamW(
                learning_rate, weight_decay=0.01, beta_2=beta_2, clipnorm=1.0
            )
        )
    config = RunConfig(
        data=args.data,
        preset="tiny",
        epochs=args.epochs,
        batch_size=64,
        learning_rate=1e-3,
        seed=args.seed,
        strategy="mirrored" if replicas > 1 else "one_device",
        questions_per_image=1,
    )
    started = time.perf_counter()
    vqa_trainer.train(config, args.run)
    with open(os.path.join(args.run, "training_seconds.json"), "w") as f:
        json.dump(time.perf_counter() - started, f)
    evaluate(args.run, args.data)


def arm_result(run):
    """Steps (as `train` recorded them), training seconds and test accuracy
    of a finished arm, or None."""
    files = [os.path.join(run, name) for name in ("history.json", "eval.json")]
    if not all(os.path.isfile(f) for f in files):
        return None
    history, evaluation = (json.load(open(f)) for f in files)
    seconds = os.path.join(run, "training_seconds.json")
    return {
        "steps": history["steps"],
        "train_s": json.load(open(seconds)) if os.path.isfile(seconds) else None,
        "accuracy": evaluation["accuracy"],
    }


def run_arms(args):
    results = {}
    for arm in args.arms.split(","):
        run = os.path.join(os.path.splitext(args.out)[0] + "_runs", arm)
        if arm_result(run) is None:
            command = [sys.executable, "-m", "benchmarks.replicas", "--arm", arm, "--run", run]
            command += ["--data", args.data, "--epochs", str(args.epochs), "--seed", str(args.seed)]
            command += ["--out", args.out]
            print(f"== {arm}: {' '.join(command)}", flush=True)
            subprocess.run(command, check=True)
        results[arm] = {"replicas": ARMS[arm], **arm_result(run)}
    report = {
        "command": "python -m benchmarks.replicas " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine.describe(),
        "epochs": args.epochs,
        "seed": args.seed,
        "runs": results,
    }
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print(table(report))


def table(report):
    runs = report["runs"]
    types = list(next(iter(runs.values()))["accuracy"]["by_question_type"])
    lines = [
        "| arm | replicas | steps | training s | relational | " + " | ".join(types) + " |",
        "|---" * (5 + len(types)) + "|",
    ]
    for name, run in runs.items():
        accuracy = run["accuracy"]
        cells = [f"{100 * accuracy['by_question_type'][t]['accuracy']:.2f}" for t in types]
        seconds = f"{run['train_s']:.0f}" if run["train_s"] else "–"
        lines.append(
            f"| {name} | {run['replicas']} | {run['steps']:,} | {seconds} | "
            f"{100 * accuracy['relational']['accuracy']:.2f} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="demo_out/data", help="data folder with scenes.jsonl")
    parser.add_argument("--epochs", type=int, default=6, help="epochs of each arm (default 6)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="results .json")
    parser.add_argument(
        "--arms",
        default=",".join(ARMS),
        help=f"comma-separated, from {', '.join(ARMS)} (default all)",
    )
    parser.add_argument("--arm", choices=ARMS, help=argparse.SUPPRESS)
    parser.add_argument("--run", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.arm:
        train_one(args)
    else:
        run_arms(args)


if __name__ == "__main__":
    main()
