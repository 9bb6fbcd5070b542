"""Quantization-aware fine-tuning against plain fine-tuning, for int8.

From one trained run, at the same steps and learning rate, three copies
are fine-tuned: plainly, with fake quantization at the inputs of every
Dense and Conv2D (`matmul_inputs`, the first version, whose ranges the
converter never saw), and with fake quantization at every tensor the int8
converter quantizes, weights included, whose ranges go to the converter
(`converter`; `simmim_tf.export.quantization_aware`). Each copy, and the run
as trained, is exported (float32 and int8, the package's export) and
measured by the export report on the whole test split: accuracy per family
and question type of Keras, float32 and int8, int8's agreement with its own
Keras model, sizes and latency.

    python -m benchmarks.quantization_aware --run demo_out/run \\
        --data demo_out/data --steps 600 \\
        --out benchmarks/results/quantization_aware_demo.json

Run folders and exports go to benchmarks/data/<out stem>/ (not committed).
"""

import argparse
import datetime
import json
import os
import shutil
import sys

from simmim_tf import machine
from simmim_tf.export.export_report import export_report
from simmim_tf.export.litert_exporter import export_run
from simmim_tf.export.quantization_aware import LOSSES, PLAIN, fine_tune_run

# arm: the fine-tuning scope (None: the run as trained, not fine-tuned).
# trained: post-training int8 of the run; fine_tuned: plain fine-tuning;
# qat_matmul_inputs: fake quantization at Dense/Conv2D inputs, ranges not
# exported; qat_converter: at every tensor, weights too, ranges exported.
ARMS = {
    "trained": None,
    "fine_tuned": PLAIN,
    "qat_matmul_inputs": "matmul_inputs",
    "qat_converter": "converter",
}


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", required=True, help="trained run folder")
    parser.add_argument("--data", required=True, help="its data folder (train and test splits)")
    parser.add_argument("--steps", type=int, default=600, help="fine-tuning steps of each copy")
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--calibration-size", type=int, default=200)
    parser.add_argument("--arms", default=",".join(ARMS), help="comma-separated, of: %(default)s")
    parser.add_argument(
        "--losses",
        choices=LOSSES,
        default="answer",
        help="what every fine-tuned arm minimises: the answer loss on plain question batches, "
        "or the training's own losses on its image-grouped batches (default %(default)s)",
    )
    parser.add_argument("--out", required=True, help="JSON to write; the .md table goes beside it")
    args = parser.parse_args(argv)
    arms = [a.strip() for a in args.arms.split(",")]
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        parser.error(f"--arms: unknown {unknown}; choose from {list(ARMS)}")

    stem = os.path.splitext(args.out)[0]
    work = os.path.join("benchmarks", "data", os.path.basename(stem))
    os.makedirs(work, exist_ok=True)
    results = {
        "command": "python -m benchmarks.quantization_aware " + " ".join(sys.argv[1:]),
        "date": datetime.date.today().isoformat(),
        "machine": machine.describe(),
        "arms": {},
    }
    for i, arm in enumerate(arms):
        run_dir = args.run
        record = None
        if ARMS[arm] is not None:
            run_dir = os.path.join(work, f"run_{i}")
            shutil.rmtree(run_dir, ignore_errors=True)
            record = fine_tune_run(
                args.run,
                run_dir,
                args.data,
                steps=args.steps,
                learning_rate=args.learning_rate,
                batch_size=args.batch_size,
                calibration_size=args.calibration_size,
                scope=ARMS[arm],
                verbose=2,
                losses=args.losses,
            )
        export_dir = os.path.join(work, f"export_{i}")
        shutil.rmtree(export_dir, ignore_errors=True)
        export_run(
            run_dir,
            export_dir,
            args.data,
            variants=("float32", "int8"),
            calibration_size=args.calibration_size,
            formats=("tflite",),
        )
        report = export_report(export_dir, run_dir, args.data)
        results["arms"][arm] = {"fine_tuning": record, "report": report}
        print(f"== {arm}\n{table({'arms': {arm: results['arms'][arm]}})}", flush=True)
        with open(args.out + ".partial.json", "w") as f:
            json.dump(results, f, indent=1)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)
    with open(stem + ".md", "w") as f:
        f.write(f"{results['command']}\n{results['date']}, {results['machine']}\n\n")
        f.write(table(results))
    os.remove(args.out + ".partial.json")


def table(results):
    """Per arm: Keras and int8 accuracy per family and question type,
    agreement, int8 latency and size."""
    lines = []
    for arm, entry in results["arms"].items():
        rows = entry["report"]["variants"]
        accuracy = rows["keras"]["accuracy"]
        families = [f for f in accuracy if f not in ("overall", "by_question_type")]
        types = sorted(accuracy.get("by_question_type", {}))
        if not lines:
            head = ["arm", "model", *families, "overall", *types, "agreement", "ms (1 thr)", "MB"]
            lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for model in ("keras", "float32", "int8"):
            acc = rows[model]["accuracy"]
            cells = [f"{100 * acc[f]['accuracy']:.2f}" for f in [*families, "overall"]]
            cells += [f"{100 * acc['by_question_type'][t]['accuracy']:.2f}" for t in types]
            extra = ["", "", ""]
            if model != "keras":
                extra = [
                    f"{100 * rows[model]['agreement_with_keras']:.2f}%",
                    f"{rows[model]['latency_ms']['1']:.2f}",
                    f"{rows[model]['bytes'] / 1e6:.3f}",
                ]
            lines.append("| " + " | ".join([arm, model, *cells, *extra]) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
