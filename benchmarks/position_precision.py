"""How precisely must a model know where objects are to answer Sort-of-CLEVR's
closest and furthest questions? The ceiling of accuracy when each object's
centre is known only to a cell of the given size (ties broken at random).

    python -m benchmarks.position_precision
    python -m benchmarks.position_precision --cells 1,4,8,15 --images 3000

Cell 7.5 is the tiny preset's region (75 px / 10 regions); 15 is the 5×5
feature map of the relation network's CNN. The last row answers without any
position: the commoner shape among the five other objects (what a model that
can count shapes but cannot compare distances would say).
"""

import argparse
import json
import os
import time

import numpy as np

from benchmarks.budgeted_training import machine


def ceilings(scenes, cell, rng):
    """{"closest": accuracy, "furthest": accuracy} with positions snapped to `cell` px."""
    right = {"closest": [], "furthest": []}
    for objects in scenes:
        exact = np.array([[o["x"], o["y"]] for o in objects], float)
        snapped = (np.floor(exact / cell) + 0.5) * cell
        for anchor in range(len(objects)):
            others = [i for i in range(len(objects)) if i != anchor]
            d = ((exact[others] - exact[anchor]) ** 2).sum(1)
            ds = ((snapped[others] - snapped[anchor]) ** 2).sum(1)
            for kind, pick in (("closest", np.argmin), ("furthest", np.argmax)):
                truth = others[pick(d)]
                best = ds.min() if kind == "closest" else ds.max()
                tied = [others[i] for i in np.flatnonzero(ds == best)]
                guess = tied[rng.integers(len(tied))]
                right[kind].append(objects[guess]["shape"] == objects[truth]["shape"])
    return {k: float(np.mean(v)) for k, v in right.items()}


def majority_prior(scenes, rng):
    """Accuracy of answering closest/furthest with the commoner shape of the others."""
    right = {"closest": [], "furthest": []}
    for objects in scenes:
        exact = np.array([[o["x"], o["y"]] for o in objects], float)
        for anchor in range(len(objects)):
            others = [i for i in range(len(objects)) if i != anchor]
            shapes = [objects[i]["shape"] for i in others]
            counts = {s: shapes.count(s) for s in set(shapes)}
            best = max(counts.values())
            tied = sorted(s for s, n in counts.items() if n == best)
            guess = tied[rng.integers(len(tied))]
            d = ((exact[others] - exact[anchor]) ** 2).sum(1)
            for kind, pick in (("closest", np.argmin), ("furthest", np.argmax)):
                right[kind].append(objects[others[pick(d)]]["shape"] == guess)
    return {k: float(np.mean(v)) for k, v in right.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="benchmarks/data/sort_of_clevr_10000")
    parser.add_argument("--cells", default="1,2,4,7.5,15", help="cell sides in pixels")
    parser.add_argument("--images", type=int, default=3000, help="scenes to use")
    parser.add_argument("--out", default="benchmarks/results/position_precision.json")
    args = parser.parse_args()
    with open(os.path.join(args.data, "scenes.jsonl")) as f:
        scenes = [json.loads(line)["objects"] for line in f][: args.images]
    rng = np.random.default_rng(0)
    rows = {cell: ceilings(scenes, float(cell), rng) for cell in args.cells.split(",")}
    rows["no position: commoner shape of the others"] = majority_prior(scenes, rng)
    report = {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "scenes": len(scenes)}
    report["ceilings"] = rows
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print("| cell (px) | closest | furthest |\n|---|---|---|")
    for cell, r in rows.items():
        print(f"| {cell} | {100 * r['closest']:.1f}% | {100 * r['furthest']:.1f}% |")


if __name__ == "__main__":
    main()
