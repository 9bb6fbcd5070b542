"""`simmim-tf export --report`: what each exported variant costs and keeps.

For every `model_<variant>.tflite` of an export folder: file size (and its
ratio to float32), accuracy per question family on the held-out split, argmax
agreement with the Keras model on the same questions, latency per question
through ai-edge-litert with 1 and 2 threads (median of `latency_runs` calls
after warm-up, tokenisation included), the same model-only median from
ai-edge-litert's own `ai_edge_litert.tools.benchmark_litert_model` (random
inputs, `CompiledModel` API), and whether the GPU delegate accepts every op
(float variants). Written as EXP/report.json and EXP/report.md.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from simmim_tf import machine
from simmim_tf.console import step
from simmim_tf.data.vqa_dataset import load_split
from simmim_tf.edge import EdgePredictor
from simmim_tf.evaluation import accuracy_by_family, tflite_answers
from simmim_tf.export.gpu_compatibility import gpu_delegate_problems
from simmim_tf.export.tflite_conversion import VARIANTS


def _latency_ms(path, image, question, threads, runs, warmup=5):
    predictor = EdgePredictor(path, num_threads=threads)
    for _ in range(warmup):
        predictor.predict(image, question)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        predictor.predict(image, question)
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def _litert_benchmark_ms(path, threads, runs):
    """Median ms per call from `ai_edge_litert.tools.benchmark_litert_model`
    (it reports two decimals), or the tool's error when it fails."""
    with tempfile.TemporaryDirectory() as tmp:
        result_json = os.path.join(tmp, "result.json")
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "ai_edge_litert.tools.benchmark_litert_model",
                f"--model={path}",
                f"--num_threads={threads}",
                f"--num_runs={runs}",
                "--warmup_runs=5",
                f"--result_json={result_json}",
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0 or not os.path.isfile(result_json):
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            return f"failed: {tail[0][:200]}"
        with open(result_json) as f:
            return json.load(f)["latency"]["median_ms"]


def _keras_answers(run_dir, question_set):
    from simmim_tf.training.run_evaluation import predict_answers
    from simmim_tf.training.runs import load_run

    return predict_answers(load_run(run_dir), question_set)


def _variant_row(path, variant, questions, keras_answers, image, question, threads, runs):
    """One .tflite variant's report row."""
    answers = tflite_answers(path, questions)
    with open(path, "rb") as f:
        flatbuffer = f.read()
    return {
        "bytes": len(flatbuffer),
        "accuracy": accuracy_by_family(
            answers, questions.answers, questions.families, None, questions.question_types
        ),
        "agreement_with_keras": float(
            np.mean([a == k for a, k in zip(answers, keras_answers, strict=True)])
        ),
        "latency_ms": {str(t): _latency_ms(path, image, question, t, runs) for t in threads},
        "litert_benchmark_ms": {str(t): _litert_benchmark_ms(path, t, runs) for t in threads},
        "gpu_delegate_problems": (
            gpu_delegate_problems(flatbuffer)
            if variant in ("float32", "float16")
            else "n/a (CPU model)"
        ),
    }


def export_report(export_dir, run_dir, data_dir, split="test", latency_runs=50, threads=(1, 2)):
    """Measures every variant in `export_dir`; writes report.json and report.md.

    Latency is measured for each thread count in `threads`."""
    paths = {
        v: os.path.join(export_dir, f"model_{v}.tflite")
        for v in VARIANTS
        if os.path.isfile(os.path.join(export_dir, f"model_{v}.tflite"))
    }
    if not paths:
        from simmim_tf.errors import SimMIMInputError

        raise SimMIMInputError(f"{export_dir}: no model_<variant>.tflite (run simmim-tf export)")
    with step(f"reading the {split} split of {data_dir}"):
        questions = load_split(data_dir, split)
    with step(f"answering its {len(questions):,} questions with Keras"):
        keras_answers = _keras_answers(run_dir, questions)
    image, question = questions.images[questions.image_index[0]], questions.questions[0]
    rows = {
        "keras": {
            "accuracy": accuracy_by_family(
                keras_answers, questions.answers, questions.families, None, questions.question_types
            )
        }
    }
    for variant, path in paths.items():
        with step(f"measuring {variant}: accuracy, agreement, latency"):
            rows[variant] = _variant_row(
                path, variant, questions, keras_answers, image, question, threads, latency_runs
            )
    if "float32" in rows:
        for variant in paths:
            rows[variant]["size_vs_float32"] = rows[variant]["bytes"] / rows["float32"]["bytes"]
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine.describe(),
        "export": export_dir,
        "data": data_dir,
        "split": split,
        "questions": len(questions),
        "latency_runs": latency_runs,
        "threads": [str(t) for t in threads],
        "variants": rows,
    }
    with open(os.path.join(export_dir, "report.json"), "w") as f:
        json.dump(report, f, indent=2)
    markdown = format_report(report)
    with open(os.path.join(export_dir, "report.md"), "w") as f:
        f.write(markdown)
    return report


def _ms(value):
    return f"{value:.2f}" if isinstance(value, float | int) else str(value)


def _fastest_lines(report):
    """Which variant answered fastest on one thread here, and why that
    depends on the CPU (`simmim_tf.machine`)."""
    threads = report["threads"][0]
    timed = {
        name: row["latency_ms"][threads]
        for name, row in report["variants"].items()
        if name != "keras"
    }
    if not timed:
        return []
    fastest = min(timed, key=timed.get)
    others = ", ".join(f"{name} {ms:.2f} ms" for name, ms in timed.items() if name != fastest)
    return [
        "",
        f"Fastest here on {threads} thread(s): **{fastest}** "
        f"({timed[fastest]:.2f} ms; {others or 'no other variant'}). int8 variants "
        "beat float32 only on CPUs with an int8 dot product (AVX-512 VNNI, AVX-VNNI, "
        "Arm dotprod/i8mm): the machine line above says whether this one has one.",
    ]


def format_report(report):
    """The report as a markdown table."""
    families = [
        f
        for f in report["variants"]["keras"]["accuracy"]
        if f not in ("overall", "by_question_type")
    ]
    threads = report["threads"]
    head = ["model", *families, "overall", "agreement", "MB", "vs float32"]
    head += [f"ms ({t} thr)" for t in threads]
    head += [f"benchmark tool ms ({' / '.join(threads)} thr)", "GPU delegate"]
    lines = [
        f"{report['questions']} {report['split']} questions of {report['data']}; "
        f"{report['date']}, {report['machine']}; latency: median of {report['latency_runs']} "
        "calls after 5 warm-up calls, tokenisation included; benchmark tool: "
        "`ai_edge_litert.tools.benchmark_litert_model`, model only, random inputs, median",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for name, row in report["variants"].items():
        accuracy = [f"{100 * row['accuracy'][f]['accuracy']:.2f}%" for f in [*families, "overall"]]
        if name == "keras":
            rest = [""] * (len(head) - 1 - len(accuracy))
        else:
            gpu = row["gpu_delegate_problems"]
            rest = [
                f"{100 * row['agreement_with_keras']:.1f}%",
                f"{row['bytes'] / 1e6:.3f}",
                f"{100 * row['size_vs_float32']:.0f}%"
                if "size_vs_float32" in row
                else "(no float32)",
                *(f"{row['latency_ms'][t]:.2f}" for t in threads),
                " / ".join(_ms(row["litert_benchmark_ms"][t]) for t in threads),
                gpu
                if isinstance(gpu, str)
                else ("all ops accepted" if not gpu else "; ".join(gpu)),
            ]
        lines.append("| " + " | ".join([name, *accuracy, *rest]) + " |")
    lines += _fastest_lines(report)
    types = sorted(report["variants"]["keras"]["accuracy"].get("by_question_type", {}))
    if types:
        lines += ["", "Accuracy per question type:", ""]
        lines += ["| model | " + " | ".join(types) + " |", "|" + "---|" * (len(types) + 1)]
        for name, row in report["variants"].items():
            by_type = row["accuracy"]["by_question_type"]
            cells = [f"{100 * by_type[t]['accuracy']:.2f}%" for t in types]
            lines.append("| " + " | ".join([name, *cells]) + " |")
    return "\n".join(lines) + "\n"
