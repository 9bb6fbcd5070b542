"""Does the model look at the object the question names? For trained run
folders: the share of the question's visual attention, and of the relational
anchor's attention, inside the named object's box, averaged over the test
split (`simmim_tf.explanation.attention_on_named_objects`; notebook 02
draws the same maps).

    python -m benchmarks.named_attention --data demo_out/data --runs demo_out/run \\
        --out benchmarks/results/named_attention_demo.json
"""

import argparse

from benchmarks.budgeted_training import report_per_run
from simmim_tf.data.vqa_dataset import load_split, read_scenes
from simmim_tf.explanation import attention_on_named_objects
from simmim_tf.training.runs import load_run


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True, help="the data folder the runs were trained on")
    parser.add_argument("--runs", required=True, help="comma-separated run folders")
    parser.add_argument("--every", type=int, default=4, help="every n-th test question")
    parser.add_argument("--out", default="benchmarks/results/named_attention.json")
    args = parser.parse_args(argv)
    test, scenes = load_split(args.data, "test"), read_scenes(args.data)

    def measure(run):
        return attention_on_named_objects(load_run(run), test, scenes, args.every)

    report_per_run(args.data, args.runs, measure, args.out)


if __name__ == "__main__":
    main()
