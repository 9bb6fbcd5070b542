"""Images as people have them: one conversion (grayscale and alpha to RGB,
resize) in the Keras image converter and in NumPy for the edge runtime."""

import numpy as np
import pytest
from PIL import Image

from simmim_tf.models import SimMIMImageConverter
from simmim_tf.preprocessing import load_image
from simmim_tf.preprocessing.image_conversion import convert_image, to_rgb

SHAPES = [(75, 75, 3), (100, 100, 3), (37, 90, 3), (120, 64, 4), (20, 20, 1), (33, 50, 2), (64, 48)]


@pytest.mark.parametrize("shape", SHAPES)
def test_numpy_and_keras_converters_agree(shape):
    image = np.random.default_rng(sum(shape)).integers(0, 256, shape).astype(np.uint8)
    keras_out = np.asarray(SimMIMImageConverter(75)(image))
    numpy_out = convert_image(image, 75)
    assert keras_out.dtype == numpy_out.dtype == np.uint8
    assert keras_out.shape == numpy_out.shape == (75, 75, 3)
    np.testing.assert_array_equal(keras_out, numpy_out)


def test_batches_of_any_size_are_converted():
    batch = np.zeros((3, 90, 60, 4), np.uint8)  # fully transparent: white
    out = np.asarray(SimMIMImageConverter(32)(batch))
    assert out.shape == (3, 32, 32, 3) and (out == 255).all()


def test_alpha_is_composited_on_white_and_gray_repeated():
    pixel = np.array([[[200, 0, 0, 128]]], np.uint8)  # red, half transparent
    expected = np.rint(200 * 128 / 255 + 255 * (1 - 128 / 255))
    assert to_rgb(pixel)[0, 0].tolist() == [expected, 127, 127]
    assert to_rgb(np.full((2, 2), 9, np.uint8)).tolist() == [[[9, 9, 9]] * 2] * 2


@pytest.mark.parametrize(
    "mode, suffix",
    [("RGBA", "png"), ("L", "png"), ("LA", "png"), ("P", "png"), ("I;16", "png"), ("1", "png"),
     ("CMYK", "jpg"), ("L", "jpg")],
)  # fmt: skip
def test_load_image_accepts_every_mode(tmp_path, mode, suffix):
    path = str(tmp_path / f"image.{suffix}")
    image = Image.new("RGB", (30, 20), (10, 200, 30)).convert(mode)
    image.save(path)
    out = load_image(path, 16)
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    if mode in ("RGBA", "P", "CMYK"):  # colour kept (a palette rounds it a little)
        assert abs(int(out[8, 8, 1]) - 200) <= 8 and abs(int(out[8, 8, 0]) - 10) <= 8


def test_transparent_palette_png_is_white_where_transparent(tmp_path):
    image = Image.new("P", (8, 8), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.paste(1, (0, 0, 4, 8))  # left half red, right half colour 0
    path = str(tmp_path / "sprite.png")
    image.save(path, transparency=0)
    out = load_image(path)
    assert out[0, 0].tolist() == [255, 0, 0] and out[0, 7].tolist() == [255, 255, 255]
