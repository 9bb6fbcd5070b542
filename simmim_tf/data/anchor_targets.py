"""Where the object a question names lies: per question, the image regions
its box covers, for supervising the anchor of `RelationalAttention`.

Sort-of-CLEVR names one object per question by its colour, and each colour
is in each scene once. In CLEVR-2D a colour may name several objects; such
questions (and questions naming no colour) get no target (all zeros), so
the anchor loss leaves them out.
"""

import numpy as np

from simmim_tf.data.vqa_dataset import read_scenes


def named_object(question, objects):
    """The one object whose colour the question names first, or None when no
    colour is named or that colour is not unique in the scene."""
    words = question.lower().replace("?", " ").replace(",", " ").split()
    colours = {o.get("color") for o in objects}
    for word in words:
        if word in colours:
            matches = [o for o in objects if o.get("color") == word]
            return matches[0] if len(matches) == 1 else None
    return None


def anchor_targets(data_dir, question_set, grid_shape, patch_size):
    """uint8 (questions, rows * cols): 1 on the regions the named object's box
    overlaps (region (r, c) covers pixels [r * patch, (r + 1) * patch)),
    all 0 where the question has no unique named object."""
    scenes = read_scenes(data_dir)
    rows, cols = grid_shape
    targets = np.zeros((len(question_set.questions), rows * cols), np.uint8)
    for q, (question, image) in enumerate(
        zip(question_set.questions, question_set.image_index, strict=True)
    ):
        obj = named_object(question, scenes.get(question_set.image_paths[image], []))
        if obj is None:
            continue
        half = obj["size"] / 2
        r0, r1 = int((obj["y"] - half) // patch_size), int((obj["y"] + half - 1e-6) // patch_size)
        c0, c1 = int((obj["x"] - half) // patch_size), int((obj["x"] + half - 1e-6) // patch_size)
        grid = np.zeros((rows, cols), np.uint8)
        grid[max(r0, 0) : min(r1, rows - 1) + 1, max(c0, 0) : min(c1, cols - 1) + 1] = 1
        targets[q] = grid.reshape(-1)
    return targets
