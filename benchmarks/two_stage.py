"""What an app saves per extra question about one picture with two-stage
inference (image encoder once, answer model per question), through
ai-edge-litert on this CPU.

Exports the run's float32 model both ways (single model; encoder + answer),
then times, for the same pictures and questions (median of --runs after
warm-up, --threads CPU threads):

    single     the whole model, per question
    encode     the image encoder, once per picture
    answer     the answer model, per question, from cached regions

The saving per extra question is single - answer.

    python -m benchmarks.two_stage --run demo_out/run --data demo_out/data

Writes benchmarks/results/two_stage.json and prints a markdown table.
"""

import argparse
import datetime
import json
import os
import statistics
import sys
import tempfile
import time

from simmim_tf import machine
from simmim_tf.data.vqa_dataset import load_split
from simmim_tf.edge import EdgePredictor, TwoStagePredictor
from simmim_tf.export.litert_exporter import export_run

HERE = os.path.dirname(os.path.abspath(__file__))


def median_ms(function, runs):
    for _ in range(5):
        function()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append(1e3 * (time.perf_counter() - start))
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--out", default=os.path.join(HERE, "results", "two_stage.json"))
    args = parser.parse_args()

    export = tempfile.mkdtemp(prefix="two_stage_")
    export_run(args.run, export, args.data, variants=("float32",), two_stage=("float32",))
    test = load_split(args.data, "test")
    image, question = test.images[0], test.questions[0]
    rows = []
    for threads in (int(t) for t in args.threads.split(",")):
        single = EdgePredictor(os.path.join(export, "model_float32.tflite"), num_threads=threads)
        two = TwoStagePredictor(export, "float32", num_threads=threads)
        regions = two.encode(image)
        row = {
            "threads": threads,
            "single_ms": median_ms(lambda s=single: s.predict(image, question), args.runs),
            "encode_ms": median_ms(lambda t=two: t.encode(image), args.runs),
            "answer_ms": median_ms(lambda t=two, r=regions: t.predict(r, question), args.runs),
        }
        row["saving_per_extra_question_ms"] = row["single_ms"] - row["answer_ms"]
        rows.append(row)
    result = {
        "date": datetime.date.today().isoformat(),
        "machine": machine.describe(),
        "command": "python " + " ".join(sys.argv),
        "runs": args.runs,
        "rows": rows,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"Two-stage inference, float32, median of {args.runs} runs ({result['date']})\n")
    print(
        "| threads | single model | encoder (once) | answer (per question) "
        "| saving per extra question |"
    )
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['threads']} | {r['single_ms']:.3f} ms | {r['encode_ms']:.3f} ms "
            f"| {r['answer_ms']:.3f} ms | {r['saving_per_extra_question_ms']:.3f} ms "
            f"({r['saving_per_extra_question_ms'] / r['single_ms']:.0%}) |"
        )


if __name__ == "__main__":
    main()
