"""SimMIMMaskedImagePretrainer: the SimMIM recipe (Xie et al. 2022) on the
backbone's image encoder, trained on images alone.

Per image and step (`call`):
1. `MaskGenerator` masks 60% of the mask patches (2×2 regions each).
2. The masked pixels are set to grey before the stem: the convolutional
   stem's 3×3 kernels cross patch borders, so without this an unmasked
   token would see the pixels it borders on (tested: the reconstruction
   does not change when masked pixels do).
3. The stem features of every masked region are replaced by a learned mask
   token; then position embeddings and the image encoder's layers, over all
   tokens (SimMIM's encoder sees masked and unmasked tokens alike).
4. A one-layer head: layer norm, then a 1×1 convolution (a Dense per
   region) to patch²·3 values, depth-to-space back to pixels.
5. Loss: L1 between reconstruction and image (both in [-1, 1]), averaged
   over the masked pixels only.

Only the image encoder is trained (patch embedding and image layers); the
question and fusion layers of the backbone are not used. The encoder needs
image layers: with none, no region sees another, and a masked region could
only be predicted from its position.
"""

import json
import os

import keras
from keras import ops

from simmim_tf.api_export import simmim_export
from simmim_tf.atomic_files import write_atomically
from simmim_tf.errors import SimMIMInputError
from simmim_tf.layers.layer_norm import LayerNorm
from simmim_tf.models.mask_generator import MaskGenerator, pixel_mask
from simmim_tf.models.prebuilt_optimizer import PrebuiltOptimizer
from simmim_tf.models.simmim_backbone import ABLATION_SWITCHES, SimMIMBackbone, current_arguments
from simmim_tf.models.simmim_presets import SIMMIM_PRESETS, preset_arguments

# Written beside the backbone preset by `save_pretrained`.
PRETRAINER_CONFIG = "pretrainer.json"
PRETRAINER_WEIGHTS = "pretrainer.weights.h5"


@simmim_export
class SimMIMMaskedImagePretrainer(PrebuiltOptimizer, keras.Model):
    """Masked-image modelling on a `SimMIMBackbone`'s image encoder.

    Args:
        backbone: `SimMIMBackbone` with `image_layers` >= 1.
        mask_patch_size: int. Side of a mask patch in pixels; a multiple of
            the backbone's `patch_size` (default twice it, as SimMIM's 32-px
            mask patches over 16-px ViT patches).
        mask_ratio: float. Share of the mask patches masked (SimMIM: 0.6).
        seed: int or None. Seed of the masks.

    Call arguments:
        images: uint8 or float (batch, size, size, 3) in [0, 255].
        region_mask: optional float (batch, regions), 1 = masked; drawn at
            random when not given.

    Returns:
        A dict: `reconstruction` (batch, size, size, 3) in [-1, 1] and
        `pixel_mask` (batch, size, size, 1).

    Example:
    >>> backbone = SimMIMBackbone.from_preset("tiny", vocabulary_size=4, image_size=32,
    ...     max_sequence_length=4, image_layers=1)   # doctest: +SKIP
    >>> pretrainer = SimMIMMaskedImagePretrainer(backbone)   # doctest: +SKIP
    >>> pretrainer.compile(keras.optimizers.AdamW(1e-3))   # doctest: +SKIP
    >>> pretrainer.fit(images, epochs=1)   # images: uint8 (n, 32, 32, 3)  # doctest: +SKIP
    """

    def __init__(self, backbone, mask_patch_size=None, mask_ratio=0.6, seed=None, **kwargs):
        super().__init__(**kwargs)
        if backbone.image_layers < 1:
            raise SimMIMInputError(
                "masked-image pretraining needs image_layers >= 1: with none, no region "
                "sees another, and a masked region can only be guessed from its position"
            )
        patch = backbone.patch_size
        mask_patch_size = 2 * patch if mask_patch_size is None else mask_patch_size
        if mask_patch_size < patch or mask_patch_size % patch:
            raise SimMIMInputError(
                f"mask_patch_size ({mask_patch_size}) must be a positive multiple of the "
                f"backbone's patch_size ({patch})"
            )
        # Only the image encoder learns here: the question and fusion layers
        # get no gradient, so they are frozen rather than left to the
        # optimizer's weight decay.
        for layer in backbone.layers:
            if layer.name not in ("patch_embedding", "image_encoder") and layer.weights:
                layer.trainable = False
        self.backbone = backbone
        self.mask_patch_size = mask_patch_size
        self.mask_ratio = mask_ratio
        self.seed = seed
        # The model owns the seed generator, so that its state is a model
        # variable: under JAX a jitted step then draws new masks each step.
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.masks = MaskGenerator(
            backbone.grid_shape, mask_patch_size // patch, mask_ratio, self.seed_generator
        )
        dim = backbone.hidden_dim
        self.mask_token = self.add_weight(
            shape=(dim,),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            name="mask_token",
        )
        self.head_norm = LayerNorm(1e-5, name="head_norm")
        self.head = keras.layers.Dense(patch * patch * 3, name="head")
        regions = backbone.grid_shape[0] * backbone.grid_shape[1]
        self.head_norm.build((None, regions, dim))
        self.head.build((None, regions, dim))
        size = backbone.image_size
        self(ops.zeros((1, size, size, 3), "uint8"))  # built, as BackupAndRestore needs

    def call(self, images, region_mask=None, training=None):
        patch_embedding = self.backbone.get_layer("patch_embedding")
        image_encoder = self.backbone.get_layer("image_encoder")
        size = self.backbone.image_size
        rows, cols = self.backbone.grid_shape
        patch = self.backbone.patch_size
        batch = ops.shape(images)[0]
        if region_mask is None:
            region_mask = self.masks(batch)
        region_mask = ops.cast(region_mask, "float32")
        pixels = pixel_mask(region_mask, (rows, cols), patch, (size, size))
        # Masked pixels to mid-grey (0 after the stem's scaling to [-1, 1]).
        images = ops.cast(images, "float32")
        images = images * (1.0 - pixels) + 127.5 * pixels
        features = patch_embedding.stem_features(images, training=training)
        token_mask = ops.reshape(region_mask, (batch, rows, cols, 1))
        token_mask = ops.cast(token_mask, features.dtype)
        mask_token = ops.cast(self.mask_token, features.dtype)
        features = features * (1.0 - token_mask) + mask_token * token_mask
        regions = image_encoder(patch_embedding.add_position(features), training=training)
        values = self.head(self.head_norm(regions))  # (batch, regions, patch² · 3)
        # Depth to space: each region's values become its patch of pixels.
        values = ops.reshape(values, (batch, rows, cols, patch, patch, 3))
        values = ops.transpose(values, (0, 1, 3, 2, 4, 5))
        reconstruction = ops.reshape(values, (batch, rows * patch, cols * patch, 3))
        return {"reconstruction": reconstruction[:, :size, :size], "pixel_mask": pixels}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = masked_l1(x, y_pred["reconstruction"], y_pred["pixel_mask"])
        return loss + ops.sum(self.losses) if self.losses else loss

    def save_pretrained(self, folder, extra=None):
        """Writes the backbone as a keras-hub preset (what `--init-from`
        loads) plus the mask token and head (`pretrainer.weights.h5`) and the
        masking settings (`pretrainer.json`, with `extra` merged in)."""
        os.makedirs(folder, exist_ok=True)
        self.backbone.save_to_preset(folder)
        self.save_weights(os.path.join(folder, PRETRAINER_WEIGHTS))
        config = {
            "mask_patch_size": self.mask_patch_size,
            "mask_ratio": self.mask_ratio,
            **(extra or {}),
        }
        write_atomically(os.path.join(folder, PRETRAINER_CONFIG), json.dumps(config, indent=2))

    @classmethod
    def from_pretrained(cls, folder):
        """The pretrainer `save_pretrained` wrote, weights included."""
        check_pretrained_folder(folder)
        with open(os.path.join(folder, PRETRAINER_CONFIG)) as f:
            config = json.load(f)
        backbone = SimMIMBackbone.from_preset(folder)
        pretrainer = cls(backbone, config["mask_patch_size"], config["mask_ratio"])
        pretrainer.load_weights(os.path.join(folder, PRETRAINER_WEIGHTS))
        return pretrainer


def masked_l1(images, reconstruction, pixels):
    """Mean |reconstruction − image| over the masked pixels and channels,
    the image scaled to [-1, 1] as the stem scales it."""
    target = ops.cast(images, "float32") / 127.5 - 1.0
    error = ops.abs(ops.cast(reconstruction, "float32") - target) * pixels
    return ops.sum(error) / (ops.sum(pixels) * 3.0 + 1e-6)


def pretraining_backbone(preset, image_size, **overrides):
    """A backbone for pretraining: the preset's image encoder, with
    `overrides` (e.g. `image_layers=2` for `tiny`, which has none); its
    question side is minimal, since pretraining does not use it and
    fine-tuning builds its own."""
    if preset not in SIMMIM_PRESETS:
        raise SimMIMInputError(f"unknown preset {preset!r}; choose from {sorted(SIMMIM_PRESETS)}")
    config = preset_arguments(preset, overrides)
    if config.get("image_layers", 0) < 1:
        raise SimMIMInputError(
            f"pretraining needs image_layers >= 1 (preset {preset!r} has "
            f"{config.get('image_layers', 0)}; give image_layers)"
        )
    return SimMIMBackbone(vocabulary_size=2, image_size=image_size, max_sequence_length=1, **config)


# Backbone fields that make up the image encoder: fine-tuning from a
# pretrained folder takes these from it.
IMAGE_ENCODER_FIELDS = (
    "image_size",
    "hidden_dim",
    "num_heads",
    "intermediate_dim",
    "patch_size",
    "stem",
    "image_layers",
)


def check_pretrained_folder(folder):
    """Raises a one-line SimMIMInputError unless `folder` is a `save_pretrained` folder."""
    if not os.path.isdir(folder):
        raise SimMIMInputError(
            f"{folder}: not a folder (expected the output of `simmim-tf pretrain`)"
        )
    for name in ("config.json", "model.weights.h5", PRETRAINER_CONFIG):
        if not os.path.exists(os.path.join(folder, name)):
            raise SimMIMInputError(
                f"{folder}: no {name}; not a folder written by `simmim-tf pretrain`"
            )


def pretrained_image_config(folder):
    """The image-encoder fields of a pretrained folder's backbone config."""
    check_pretrained_folder(folder)
    with open(os.path.join(folder, "config.json")) as f:
        config = json.load(f)["config"]
    # A folder of an earlier version may name an ablation switch: refused
    # unless it holds the value the library builds.
    current_arguments({k: config[k] for k in ABLATION_SWITCHES if k in config})
    return {k: config[k] for k in IMAGE_ENCODER_FIELDS if k in config}


def load_image_encoder(backbone, folder):
    """Copies the pretrained patch embedding and image layers of `folder`
    into `backbone`, whose image encoder must have the same configuration
    (build it with `pretrained_image_config(folder)`). Returns the number of
    weight arrays copied."""
    wanted = pretrained_image_config(folder)
    have = {k: getattr(backbone, k) for k in wanted}
    differ = {k: (wanted[k], have[k]) for k in wanted if wanted[k] != have[k]}
    if differ:
        described = ", ".join(f"{k} {a} (pretrained) vs {b}" for k, (a, b) in differ.items())
        raise SimMIMInputError(f"{folder}: image encoder does not match the model: {described}")
    pretrained = SimMIMBackbone.from_preset(folder)
    copied = 0
    for name in ("patch_embedding", "image_encoder"):
        source, target = pretrained.get_layer(name), backbone.get_layer(name)
        target.set_weights(source.get_weights())
        copied += len(source.get_weights())
    return copied
