"""Random masks for masked-image pretraining, as SimMIM draws them.

SimMIM (Xie et al. 2022, section 3.1 and the `MaskGenerator` of
microsoft/SimMIM) masks square patches of 32 px on 192-px images whose ViT
patches are 16 px: each mask patch covers 2×2 model patches, and 60% of the
mask patches are masked, chosen uniformly without replacement, the same
count in every image. Here the mask patch keeps that ratio to the model's
patch (`mask_patch_size` = 2 × `patch_size` by default, 16 px for the 8-px
patches of the presets), so a 75-px image (10×10 regions) gets a 5×5 mask
grid and 15 of its 25 cells masked.

Masks are drawn in the graph with `keras.random`, so `fit` on a plain image
dataset gets a fresh mask per image and step.
"""

import math

import keras
from keras import ops

from simmim_tf.errors import SimMIMInputError


class MaskGenerator:
    """Draws region masks on a coarse grid.

    Args:
        grid_shape: (int, int). Rows and columns of the model's region grid.
        scale: int. Regions per mask patch side (mask patch / model patch).
        mask_ratio: float in (0, 1). Share of the mask patches masked.
        seed: int or None.

    `mask_cells` is the number of masked mask patches per image,
    ceil(cells × ratio) as in SimMIM. `__call__(batch)` returns float32
    (batch, rows * cols) region masks (1 = masked), row-major; a mask grid
    that overhangs the region grid (10 regions, scale 3) is cropped.

    Example:
    >>> masks = MaskGenerator((10, 10), scale=2, mask_ratio=0.6, seed=1)(4)
    >>> masks.shape, float(masks.sum()) / 4
    ((4, 100), 60.0)
    """

    def __init__(self, grid_shape, scale=2, mask_ratio=0.6, seed=None):
        # `seed` may be a `keras.random.SeedGenerator`: a model that owns it
        # tracks its state, which a jitted JAX step must carry forward.
        if not 0.0 < mask_ratio < 1.0:
            raise SimMIMInputError(f"mask_ratio must be between 0 and 1; received {mask_ratio}")
        if scale < 1:
            raise SimMIMInputError(f"scale must be at least 1; received {scale}")
        self.grid_shape = tuple(grid_shape)
        self.scale = scale
        self.mask_ratio = mask_ratio
        rows, cols = self.grid_shape
        self.mask_grid = (math.ceil(rows / scale), math.ceil(cols / scale))
        self.mask_cells = math.ceil(self.mask_grid[0] * self.mask_grid[1] * mask_ratio)
        self.seed_generator = (
            seed
            if isinstance(seed, keras.random.SeedGenerator)
            else keras.random.SeedGenerator(seed)
        )

    def __call__(self, batch_size):
        rows, cols = self.grid_shape
        mask_rows, mask_cols = self.mask_grid
        cells = mask_rows * mask_cols
        # A uniformly random subset of `mask_cells` cells per image: the
        # cells whose random score ranks among the lowest `mask_cells`.
        scores = keras.random.uniform((batch_size, cells), seed=self.seed_generator)
        ranks = ops.argsort(ops.argsort(scores, axis=-1), axis=-1)
        mask = ops.cast(ranks < self.mask_cells, "float32")
        mask = ops.reshape(mask, (batch_size, mask_rows, 1, mask_cols, 1))
        mask = ops.broadcast_to(mask, (batch_size, mask_rows, self.scale, mask_cols, self.scale))
        mask = ops.reshape(mask, (batch_size, mask_rows * self.scale, mask_cols * self.scale))
        return ops.reshape(mask[:, :rows, :cols], (batch_size, rows * cols))


def pixel_mask(region_mask, grid_shape, patch_size, image_shape):
    """(batch, regions) region masks → (batch, height, width, 1) pixel masks:
    each region covers `patch_size`² pixels, cropped to the image."""
    rows, cols = grid_shape
    height, width = image_shape
    batch = ops.shape(region_mask)[0]
    mask = ops.reshape(region_mask, (batch, rows, 1, cols, 1))
    mask = ops.broadcast_to(mask, (batch, rows, patch_size, cols, patch_size))
    mask = ops.reshape(mask, (batch, rows * patch_size, cols * patch_size, 1))
    return mask[:, :height, :width]
