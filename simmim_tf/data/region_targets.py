"""Per-region object labels from `scenes.jsonl`, for the grounding loss.

Each region of the model's grid gets, for every categorical attribute of the
scene objects (Sort-of-CLEVR: colour and shape; CLEVR-2D: colour, shape and
size_name), the id of the value of the object that covers the region's
centre, or 0 when no object does; and that object's centre relative to the
region's centre, in region sides. `GroundingHead` learns to predict them from
the encoded regions: the object-level supervision that MDETR found to be its
largest lever, here from annotations the generators already write.

The offset matters: with positions known only to the region (7.5 px), the
closest and furthest objects of Sort-of-CLEVR are right for at most 93% and
95% of questions (`benchmarks/position_precision.py`, docs/reasoning.md).
"""

import dataclasses
import os

import numpy as np
from PIL import Image

from simmim_tf.data.scene_objects import GEOMETRY, object_box
from simmim_tf.data.vqa_dataset import read_scenes
from simmim_tf.errors import SimMIMInputError


@dataclasses.dataclass
class RegionTargets:
    """targets: float32 (num_images, rows * cols, len(attributes) + 2): the
    attribute ids (0 = no object), then the object centre's (dx, dy) from
    the region centre in region sides (0 where no object).

    vocabularies: {attribute: [value, ...]}; value v of attribute a has id
    vocabularies[a].index(v) + 1.
    """

    targets: np.ndarray
    vocabularies: dict

    @property
    def attribute_sizes(self):
        """Classes per attribute, "no object" included."""
        return [len(values) + 1 for values in self.vocabularies.values()]


def scene_image_size(data_dir, image_path):
    """(width, height) of the image file the scene coordinates refer to."""
    with Image.open(os.path.join(data_dir, image_path)) as image:
        return image.size


def region_targets(data_dir, image_paths, grid_shape, vocabularies=None):
    """RegionTargets of `image_paths` (a QuestionSet's) on a rows×cols grid.

    Args:
        data_dir: folder with scenes.jsonl.
        image_paths: the images, in the order of the QuestionSet's `images`.
        grid_shape: (rows, cols) of the model's regions.
        vocabularies: the training split's, to label a test split with the
            same ids; None builds them from these scenes (sorted values).

    Raises SimMIMInputError when scenes.jsonl is missing, lacks an image, or
    names a value outside given vocabularies.
    """
    scenes = read_scenes(data_dir)
    missing = [p for p in image_paths if p not in scenes]
    if missing:
        raise SimMIMInputError(
            f"{data_dir}/scenes.jsonl: no scene for {missing[0]} "
            f"({len(missing)} image(s) without one)"
        )
    objects = [scenes[p] for p in image_paths]
    if vocabularies is None:
        names = sorted(
            {k for scene in objects for o in scene for k, v in o.items() if isinstance(v, str)}
            - set(GEOMETRY)
        )
        vocabularies = {
            a: sorted({o[a] for scene in objects for o in scene if a in o}) for a in names
        }
    width, height = scene_image_size(data_dir, image_paths[0])
    rows, cols = grid_shape
    # Centre of each region in scene pixels: (rows * cols,) each.
    cy, cx = np.meshgrid(
        (np.arange(rows) + 0.5) * height / rows,
        (np.arange(cols) + 0.5) * width / cols,
        indexing="ij",
    )
    cx, cy = cx.reshape(-1), cy.reshape(-1)
    ids = {a: {v: i + 1 for i, v in enumerate(values)} for a, values in vocabularies.items()}
    targets = np.zeros((len(image_paths), rows * cols, len(vocabularies) + 2), np.float32)
    for n, scene in enumerate(objects):
        for o in scene:
            x0, y0, x1, y1 = object_box(o)
            inside = (cx >= x0) & (cx <= x1) & (cy >= y0) & (cy <= y1)
            for k, a in enumerate(vocabularies):
                if a not in o:
                    continue
                if o[a] not in ids[a]:
                    raise SimMIMInputError(
                        f"{data_dir}/scenes.jsonl: {image_paths[n]} has {a}={o[a]!r}, "
                        f"not seen in the training scenes"
                    )
                targets[n, inside, k] = ids[a][o[a]]
            targets[n, inside, -2] = (o["x"] - cx[inside]) * cols / width
            targets[n, inside, -1] = (o["y"] - cy[inside]) * rows / height
    return RegionTargets(targets, vocabularies)
