"""The export report of an existing export folder (what `simmim-tf export
--report` prints), for measuring again without converting again.

    python -m benchmarks.export_report --run demo_out/run --export demo_out/export \\
        --data demo_out/data
"""

import argparse

from simmim_tf.export.export_report import export_report, format_report


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="trained run folder (the Keras reference)")
    parser.add_argument("--export", required=True, help="folder written by simmim-tf export")
    parser.add_argument("--data", required=True, help="data folder (its test split is used)")
    parser.add_argument("--latency-runs", type=int, default=50)
    args = parser.parse_args()
    report = export_report(args.export, args.run, args.data, latency_runs=args.latency_runs)
    print(format_report(report))


if __name__ == "__main__":
    main()
