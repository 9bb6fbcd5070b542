"""Agreement with Keras against latency, per TFLite variant, from export reports.

Reads the report.json files that `simmim-tf export --report` writes (one per
model) and draws, for each model, each variant at (latency by ai-edge-litert's
benchmark tool on 1 thread, argmax agreement with Keras).

    python -m benchmarks.plot_export_tradeoff \
        benchmarks/results/export_report.json:"make demo model" \
        benchmarks/results/export_report_12_epochs.json:"12-epoch model" \
        --out docs/export_tradeoff.png
"""

import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

MARKERS = {"float32": "o", "float16": "s", "dynamic": "^", "int8": "v", "int8_mixed": "D"}
# Label offsets (points), one per report, so that labels of nearby points part.
OFFSETS = ((6, 3), (6, -11), (6, 10))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", help="REPORT.json:LABEL")
    parser.add_argument("--out", required=True, help="PNG to write")
    args = parser.parse_args()

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    colours = ("tab:blue", "tab:orange", "tab:green")
    for colour, offset, spec in zip(colours, OFFSETS, args.reports, strict=False):
        path, _, label = spec.partition(":")
        with open(path) as f:
            report = json.load(f)
        for variant, row in report["variants"].items():
            if variant == "keras":
                continue
            ms = row["litert_benchmark_ms"]["1"]
            if not isinstance(ms, float | int):
                raise SystemExit(f"{path}: no benchmark-tool latency for {variant}: {ms}")
            agreement = 100 * row["agreement_with_keras"]
            ax.scatter(ms, agreement, marker=MARKERS.get(variant, "x"), color=colour, s=50)
            # float16 sits on float32 (same speed, same answers): label it to the left.
            xytext = (-44, offset[1]) if variant == "float16" else offset
            ax.annotate(
                variant, (ms, agreement), textcoords="offset points", xytext=xytext, fontsize=8
            )
        ax.plot([], [], color=colour, label=label)
    ax.axhline(99, color="grey", linestyle="--", linewidth=1)
    ax.text(ax.get_xlim()[1], 99.1, "target: 99% agreement ", color="grey", fontsize=8, ha="right")
    ax.set_xlabel("ms per question, 1 thread (ai-edge-litert benchmark tool)")
    ax.set_ylabel("same answer as Keras (%)")
    ax.set_title("TFLite variants: agreement with Keras against speed")
    ax.legend(loc="lower center")
    ax.margins(x=0.12)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
