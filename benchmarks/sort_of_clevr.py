"""SimMIM against the relation-network baselines on Sort-of-CLEVR, at equal
wall-clock budgets on this machine.

Trains each model for the same number of minutes on the same data (the full
Sort-of-CLEVR of Santoro et al. 2017 by default: 10,000 images, the last 200
held out), evaluates on the test split at a quarter, half, three quarters
and all of the budget (the clock is paused while evaluating), and writes a
JSON, a markdown table (accuracy per family and per question type, training
time, questions per second, parameters) and a learning-curve PNG.

    python -m benchmarks.sort_of_clevr --minutes 5
    python -m benchmarks.sort_of_clevr --models simmim_tiny,cnn_rn --minutes 30
    python -m benchmarks.sort_of_clevr --data benchmarks/data/sort_of_clevr_ternary --ternary

Models: simmim_tiny, simmim_small (SimMIMVQA presets trained by
benchmarks/budgeted_training.py: image-grouped batches, grounding loss,
AdamW with warm-up and a cosine over the budget), simmim_before (the
architecture before image layers and grounding, same recipe), and the
baselines cnn_mlp, cnn_rn (benchmarks/baselines, Adam 2.5e-4 as Santoro et
al. used for CLEVR, plain question batches).
"""

import argparse
import os

from benchmarks.baselines.relation_network import cnn_mlp, cnn_rn
from benchmarks.budgeted_training import (
    Data,
    new_report,
    per_type_table,
    remove_partial,
    summary,
    train_baseline,
    train_simmim,
    write_report,
)
from simmim_tf.data import sort_of_clevr

MODELS = ("simmim_tiny", "simmim_small", "simmim_before", "cnn_mlp", "cnn_rn")


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", default="benchmarks/data/sort_of_clevr_10000")
    parser.add_argument("--num-images", type=int, default=10000, help="if --data must be made")
    parser.add_argument("--ternary", action="store_true", help="if --data must be made")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--minutes", type=float, default=30.0, help="training budget per model")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", default="benchmarks/results/sort_of_clevr.json")
    args = parser.parse_args()
    models = args.models.split(",")
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {MODELS}")

    if not os.path.isfile(os.path.join(args.data, "questions.jsonl")):
        sort_of_clevr.generate(args.data, num_images=args.num_images, seed=0, ternary=args.ternary)
    data = Data(args.data, max_sequence_length=24)
    report = new_report("Sort-of-CLEVR", data, args.minutes)
    report["batch_size"] = args.batch_size
    for name in models:
        print(f"== {name}, {args.minutes} min", flush=True)
        if name.startswith("simmim_"):
            preset = name.split("_", 1)[1]
            overrides, recipe = {}, {"batch_size": args.batch_size}
            if preset == "before":
                preset = "tiny"
                overrides, recipe["grounding_weight"] = {"image_layers": 0}, 0.0
            result = train_simmim(data, args.minutes, preset, overrides, recipe)
        else:
            factory = {"cnn_mlp": cnn_mlp, "cnn_rn": cnn_rn}[name]
            model = factory(data.image_size, data.tokenizer.vocabulary_size, len(data.answers))
            result = train_baseline(data, args.minutes, model, batch_size=args.batch_size)
        report["results"].append({"model": name, **result})
        print(summary(result["accuracy"]), flush=True)
        write_report(report, args.out + ".partial.json", format_table(report))
    write_report(report, args.out, format_table(report))
    remove_partial(args.out)


def format_table(report):
    lines = [
        f"Sort-of-CLEVR ({report['train_questions']} training, {report['test_questions']} test "
        f"questions), {report['minutes_per_model']} min of training per model, batch "
        f"{report['batch_size']}; {report['date']}, {report['machine']}",
        "",
        "| model | parameters | minutes | non-relational | relational | overall | epochs "
        "| questions/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        for point in r["curve"]:
            a = point["accuracy"]
            lines.append(
                f"| {r['model']} | {r['parameters']:,} | {point['train_s'] / 60:.1f} "
                f"| {100 * a['non_relational']['accuracy']:.2f}% "
                f"| {100 * a['relational']['accuracy']:.2f}% "
                f"| {100 * a['overall']['accuracy']:.2f}% "
                f"| {point['steps'] * report['batch_size'] / report['train_questions']:.2f} "
                f"| {r['questions_per_s']:.0f} |"
            )
    lines += ["", "At the end of the budget, per family and question type (%):", ""]
    return "\n".join(lines) + "\n" + per_type_table(report)


if __name__ == "__main__":
    main()
