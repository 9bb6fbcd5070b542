"""Masked-image pretraining (SimMIM): the mask generator against the recipe,
no leak from masked pixels, the loss on masked pixels only, save/load,
`simmim-tf pretrain` and fine-tuning with `--init-from`."""

import json
import os

import keras
import numpy as np
import pytest
from PIL import Image

from simmim_tf import cli
from simmim_tf.errors import SimMIMInputError
from simmim_tf.models import SimMIMBackbone, SimMIMMaskedImagePretrainer, SimMIMVQA
from simmim_tf.models.mask_generator import MaskGenerator, pixel_mask
from simmim_tf.models.simmim_masked_image_pretrainer import load_image_encoder, masked_l1
from tests.conftest import TINY_BACKBONE

RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, (8, 32, 32, 3)).astype("uint8")


def _pretrainer(**kwargs):
    return SimMIMMaskedImagePretrainer(SimMIMBackbone(**TINY_BACKBONE), seed=0, **kwargs)


def test_masks_follow_the_simmim_recipe():
    # 80×80 regions of 8 px → 10×10 regions; mask patches of 16 px = 2×2 regions.
    generator = MaskGenerator((10, 10), scale=2, mask_ratio=0.6, seed=0)
    assert generator.mask_grid == (5, 5) and generator.mask_cells == 15  # ceil(25 · 0.6)
    masks = np.asarray(generator(400)).reshape(400, 10, 10)
    # Every image: exactly 15 of 25 mask patches, i.e. 60 of 100 regions.
    np.testing.assert_array_equal(masks.sum(axis=(1, 2)), 60)
    # Aligned to the coarse grid: constant over each 2×2 block of regions.
    blocks = masks.reshape(400, 5, 2, 5, 2)
    assert (blocks.min(axis=(2, 4)) == blocks.max(axis=(2, 4))).all()
    # Uniform over the cells: each is masked in about 60% of images.
    frequency = blocks[:, :, 0, :, 0].mean(axis=0)
    assert np.abs(frequency - 0.6).max() < 0.1, frequency
    # Fresh masks per image and per call.
    assert len({m.tobytes() for m in masks}) > 390
    assert not np.array_equal(np.asarray(generator(4)), np.asarray(generator(4)))
    # A grid the mask patches overhang (5 regions, scale 2) is cropped.
    odd = np.asarray(MaskGenerator((5, 5), scale=2, seed=0)(3))
    assert odd.shape == (3, 25) and set(np.unique(odd)) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="mask_ratio"):
        MaskGenerator((4, 4), mask_ratio=1.0)


def test_pixel_mask_covers_each_masked_region_patch():
    region = np.zeros((1, 4 * 4), "float32")
    region[0, 5] = 1.0  # row 1, column 1
    pixels = np.asarray(pixel_mask(region, (4, 4), 8, (30, 30)))[0, :, :, 0]
    assert pixels.shape == (30, 30)
    assert pixels[8:16, 8:16].all() and pixels.sum() == 64


def test_masked_pixels_do_not_reach_the_reconstruction():
    pretrainer = _pretrainer()
    mask = np.asarray(pretrainer.masks(2))
    out = pretrainer(IMAGES[:2], mask)
    pixels = np.asarray(out["pixel_mask"])
    assert 0.5 < pixels.mean() < 0.9
    # New content in every masked pixel: the reconstruction does not change.
    changed = np.where(pixels > 0, 255 - IMAGES[:2], IMAGES[:2]).astype("uint8")
    np.testing.assert_allclose(
        np.asarray(pretrainer(changed, mask)["reconstruction"]),
        np.asarray(out["reconstruction"]),
        atol=1e-5,
    )
    # New content in the visible pixels: it does.
    visible = np.where(pixels > 0, IMAGES[:2], 255 - IMAGES[:2]).astype("uint8")
    moved = np.asarray(pretrainer(visible, mask)["reconstruction"])
    assert np.abs(moved - np.asarray(out["reconstruction"])).max() > 1e-3


def test_loss_counts_masked_pixels_only():
    images = IMAGES[:2]
    pixels = np.zeros((2, 32, 32, 1), "float32")
    pixels[:, :16] = 1.0
    target = images.astype("float32") / 127.5 - 1.0
    reconstruction = target.copy()
    reconstruction[:, 16:] += 0.7  # wrong only where nothing is masked
    assert float(masked_l1(images, reconstruction, pixels)) < 1e-5
    reconstruction[:, :16] += 0.25
    np.testing.assert_allclose(float(masked_l1(images, reconstruction, pixels)), 0.25, atol=1e-5)


def test_pretraining_learns_and_round_trips(tmp_path):
    keras.utils.set_random_seed(0)
    pretrainer = _pretrainer()
    # Smooth images: neighbours predict masked pixels, so the loss can fall.
    ramp = np.linspace(0, 255, 32, dtype="float32")
    images = np.stack([np.stack([ramp[None, :] * 0 + ramp[:, None]] * 3, -1)] * 16)
    images = images.astype("uint8")
    pretrainer.compile(keras.optimizers.AdamW(3e-3))
    history = pretrainer.fit(images, batch_size=8, epochs=12, verbose=0).history["loss"]
    assert history[-1] < 0.5 * history[0], history
    # Only the image encoder, the mask token and the head are trained.
    image_encoder = {
        id(v)
        for name in ("patch_embedding", "image_encoder")
        for v in pretrainer.backbone.get_layer(name).trainable_variables
    }
    others = [v.path for v in pretrainer.trainable_variables if id(v) not in image_encoder]
    assert image_encoder and sorted(others) == sorted(
        [pretrainer.mask_token.path]
        + [
            v.path
            for v in pretrainer.head_norm.trainable_variables + pretrainer.head.trainable_variables
        ]
    ), others
    pretrainer.save_pretrained(str(tmp_path / "pre"))
    loaded = SimMIMMaskedImagePretrainer.from_pretrained(str(tmp_path / "pre"))
    mask = np.asarray(pretrainer.masks(2))
    np.testing.assert_allclose(
        np.asarray(loaded(images[:2], mask)["reconstruction"]),
        np.asarray(pretrainer(images[:2], mask)["reconstruction"]),
        atol=1e-5,
    )


def test_pretrainer_refuses_an_encoder_without_image_layers():
    with pytest.raises(ValueError, match="image_layers >= 1"):
        SimMIMMaskedImagePretrainer(SimMIMBackbone(**{**TINY_BACKBONE, "image_layers": 0}))
    for size in (12, 0, -8):
        with pytest.raises(ValueError, match="positive multiple"):
            _pretrainer(mask_patch_size=size)


def _image_folder(folder, count=24, size=32):
    os.makedirs(folder, exist_ok=True)
    for i in range(count):
        Image.fromarray(RNG.integers(0, 256, (size, size, 3)).astype("uint8")).save(
            os.path.join(folder, f"{i:03d}.png")
        )
    return folder


def test_pretrain_command_then_fine_tuning_from_it(tmp_path, capsys):
    images = _image_folder(str(tmp_path / "images"))
    with open(os.path.join(images, "broken.png"), "w") as f:
        f.write("not an image")
    out = str(tmp_path / "pretrained")
    common = ["pretrain", "--images", images, "--out", out, "--epochs", "1", "--batch-size", "8"]
    # An unreadable file stops the run and is named, unless skipped on request.
    assert cli.main(common) == 2
    assert "broken.png" in capsys.readouterr().err
    assert cli.main([*common, "--skip-bad-images"]) == 0
    assert "broken.png" in open(os.path.join(out, "skipped_images.txt")).read()
    config = json.load(open(os.path.join(out, "pretrainer.json")))
    assert config["num_images"] == 24 and config["skipped_images"] == 1
    assert config["mask_patch_size"] == 16 and config["mask_ratio"] == 0.6
    assert os.path.getsize(os.path.join(out, "reconstructions.png")) > 1000

    # Fine-tuning: the VQA model takes the image encoder's architecture and weights.
    backbone_config = json.load(open(os.path.join(out, "config.json")))["config"]
    vqa = SimMIMVQA.from_preset(
        "tiny", num_answers=3, vocabulary_size=20, image_size=32, max_sequence_length=6,
        image_layers=backbone_config["image_layers"],
    )  # fmt: skip
    assert load_image_encoder(vqa.backbone, out) > 0
    pretrained = SimMIMBackbone.from_preset(out)
    for name in ("patch_embedding", "image_encoder"):
        for a, b in zip(
            vqa.backbone.get_layer(name).get_weights(),
            pretrained.get_layer(name).get_weights(),
            strict=True,
        ):
            np.testing.assert_array_equal(a, b)
    # A model with another image encoder is refused, naming the difference.
    other = SimMIMVQA.from_preset(
        "tiny", num_answers=3, vocabulary_size=20, image_size=32, max_sequence_length=6,
        image_layers=1,
    )  # fmt: skip
    with pytest.raises(SimMIMInputError, match="image_layers 2 .pretrained. vs 1"):
        load_image_encoder(other.backbone, out)


def test_pretrain_command_errors(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["pretrain", "--images", str(empty), "--out", str(tmp_path / "o")]) == 2
    assert "no .png, .jpg or .jpeg" in capsys.readouterr().err
    assert cli.main(["pretrain", "--images", str(tmp_path / "nope"), "--out", "x"]) == 2
    assert "nope: not found" in capsys.readouterr().err
    images = _image_folder(str(tmp_path / "images"), count=2)
    for option, value in (("--epochs", "0"), ("--batch-size", "0"), ("--image-layers", "0")):
        args = ["pretrain", "--images", images, "--out", str(tmp_path / "o"), option, value]
        assert cli.main(args) == 2
        assert "must be at least 1" in capsys.readouterr().err


def test_train_init_from_a_pretrained_folder(tmp_path, capsys):
    data, pretrained, run = (str(tmp_path / d) for d in ("data", "pretrained", "run"))
    assert cli.main(["data", "sort-of-clevr", "--out", data, "--num-images", "40"]) == 0
    # Pretrained on other-sized images: refused, saying which sizes.
    small = str(tmp_path / "small")
    pretrain = ["pretrain", "--epochs", "1", "--batch-size", "16"]
    other_images = _image_folder(str(tmp_path / "i"))
    assert cli.main([*pretrain, "--images", other_images, "--out", small]) == 0
    train = ["train", "--data", data, "--out", run, "--epochs", "1", "--batch-size", "32"]
    assert cli.main([*train, "--init-from", small]) == 2
    assert "pretrained on 32-px images, the data's are 75 px" in capsys.readouterr().err
    # Pretrained on the data's own images: the run starts from its image encoder.
    images = os.path.join(data, "images")
    assert cli.main([*pretrain, "--images", images, "--out", pretrained]) == 0
    assert cli.main([*train, "--init-from", pretrained]) == 0
    assert f"image encoder initialised from {pretrained}" in capsys.readouterr().out
    trained = SimMIMVQA.from_preset(run)
    assert trained.backbone.image_layers == 2  # the pretrained encoder's, not tiny's 0
