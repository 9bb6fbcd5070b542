"""Where does a trained model place the objects it sees? Over the regions an
object covers (the region's centre inside the object's square, the regions
the grounding target labels), the distance in pixels from the object's
centre to the position the relational attention uses: the region's centre,
or, for a run with refined positions (relational `refine_positions`), that centre moved by the
predicted offset. Sort-of-CLEVR's closest questions need each object to
about 3 px (`benchmarks/position_precision.py`).

    python -m benchmarks.position_error --data benchmarks/data/sort_of_clevr_10000 \\
        --runs benchmarks/data/soc30_models/two_anchors_read_refined \\
        --out benchmarks/results/position_error_sort_of_clevr.json
"""

import argparse

import numpy as np

from benchmarks.budgeted_training import report_per_run
from simmim_tf.data.region_targets import region_targets, scene_image_size
from simmim_tf.data.vqa_dataset import load_split
from simmim_tf.models.unused_backbone_layers import refining_relational_attention
from simmim_tf.training.runs import load_run


def position_errors(vqa, images, targets, pixels_per_side, batch_size=64):
    """(error of the region centres, error of the positions used) in pixels,
    one per occupied region of `images`; the two are equal without refined
    positions. `targets` are `region_targets(...).targets` of the images."""
    backbone = vqa.backbone
    relational = refining_relational_attention(backbone)
    centre, used = [], []
    for start in range(0, len(images), batch_size):
        offset = targets[start : start + batch_size, :, -2:]  # object centre − region centre
        # Labelled with any attribute: the region's centre is inside an object.
        occupied = (targets[start : start + batch_size, :, :-2] > 0).any(-1)
        if relational is not None:
            regions = backbone.encode_image(images[start : start + batch_size])
            moved = np.asarray(relational.region_offsets(regions))
        else:
            moved = np.zeros_like(offset)
        centre.append(np.linalg.norm(offset * pixels_per_side, axis=-1)[occupied])
        used.append(np.linalg.norm((offset - moved) * pixels_per_side, axis=-1)[occupied])
    return np.concatenate(centre), np.concatenate(used)


def summary(errors):
    return {
        "mean_px": round(float(errors.mean()), 3),
        "median_px": round(float(np.median(errors)), 3),
        "within_3px": round(float((errors <= 3).mean()), 4),
        "regions": int(errors.size),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True, help="a generated folder with scenes.jsonl")
    parser.add_argument("--runs", required=True, help="comma-separated trained run folders")
    parser.add_argument("--images", type=int, default=500, help="test images to measure on")
    parser.add_argument("--out", default="benchmarks/results/position_error.json")
    args = parser.parse_args(argv)

    def measure(run):
        vqa = load_run(run)
        test = load_split(args.data, "test", image_size=vqa.backbone.image_size)
        images, paths = test.images[: args.images], test.image_paths[: args.images]
        rows, cols = vqa.backbone.grid_shape
        width, height = scene_image_size(args.data, paths[0])
        targets = region_targets(args.data, paths, (rows, cols)).targets
        side = np.array([width / cols, height / rows])  # pixels per region side
        centre, used = position_errors(vqa, images, targets, side)
        return {"region_centre": summary(centre), "position_used": summary(used)}

    report_per_run(args.data, args.runs, measure, args.out)


if __name__ == "__main__":
    main()
