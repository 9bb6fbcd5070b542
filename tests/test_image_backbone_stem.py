"""A keras-hub image backbone as SimMIM's stem: built from its config
(random weights, nothing downloaded), trained, saved as a preset and
exported to TFLite with builtin ops only."""

import json
import os

import keras
import keras_hub
import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from simmim_tf.export.litert_exporter import export_run
from simmim_tf.export.tflite_model_ops import non_builtin_ops, read_ops
from simmim_tf.layers import ImageBackboneStem
from simmim_tf.models import SimMIMBackbone, SimMIMVQA
from simmim_tf.models.simmim_image_converter import SimMIMImageConverter
from simmim_tf.models.simmim_tokenizer import SimMIMTokenizer
from simmim_tf.models.simmim_vqa_preprocessor import SimMIMVQAPreprocessor
from simmim_tf.training.run_config import RunConfig
from tests.conftest import TINY_BACKBONE, tiny_inputs
from tests.test_case import TestCase


def tiny_mobilenet():
    """A MobileNetV3 of total stride 8 (4×4 regions on 32 pixels)."""
    return keras_hub.models.MobileNetBackbone(
        stackwise_expansion=[[16], [32, 32]],
        stackwise_num_blocks=[1, 2],
        stackwise_num_filters=[[8], [16, 16]],
        stackwise_kernel_size=[[3], [3, 3]],
        stackwise_num_strides=[[2], [1, 1]],
        stackwise_se_ratio=[[None], [0.25, 0.25]],
        stackwise_activation=[["relu"], ["hard_swish", "hard_swish"]],
        stackwise_padding=[[1], [1, 1]],
        output_num_filters=32,
        depthwise_filters=8,
        depthwise_stride=2,
        depthwise_residual=False,
        last_layer_filter=32,
        image_shape=(None, None, 3),
        input_num_filters=8,
    )


def tiny_vit():
    return keras_hub.models.ViTBackbone(
        image_shape=(32, 32, 3), patch_size=8, num_layers=1, num_heads=2, hidden_dim=16, mlp_dim=32
    )


class TestImageBackboneStem(TestCase):
    @pytest.mark.parametrize("make", [tiny_mobilenet, tiny_vit])
    def test_layer(self, make):
        # Both output kinds: a feature map, and tokens with a class token.
        self.run_layer_test(
            ImageBackboneStem(make(), hidden_dim=24, image_size=32),
            (tiny_inputs()["images"],),
            [(2, 16, 24)],
        )

    def test_image_size_must_be_whole_strides(self):
        with pytest.raises(ValueError, match="whole number of the backbone's strides"):
            ImageBackboneStem(tiny_mobilenet(), hidden_dim=24, image_size=36)
        with pytest.raises(ValueError, match="leave patch_size out"):
            SimMIMBackbone(**{**TINY_BACKBONE, "stem": tiny_mobilenet(), "patch_size": 4})
        stem = ImageBackboneStem(tiny_mobilenet(), hidden_dim=24, image_size=32)
        with pytest.raises(ValueError, match="hidden_dim=32"):
            SimMIMBackbone(**{**TINY_BACKBONE, "stem": stem, "patch_size": None})

    def test_a_stem_with_its_own_pixel_scale(self):
        stem = ImageBackboneStem(tiny_vit(), hidden_dim=32, image_size=32, scale=1 / 255, offset=0)
        backbone = SimMIMBackbone(**{**TINY_BACKBONE, "stem": stem, "patch_size": None})
        assert backbone.get_layer("patch_embedding") is stem
        clone = SimMIMBackbone.from_config(json.loads(json.dumps(backbone.get_config())))
        assert clone.get_layer("patch_embedding").scale == 1 / 255

    def test_trains_saves_and_exports_with_builtin_ops(self, tmp_path):
        backbone = SimMIMBackbone(**{**TINY_BACKBONE, "stem": tiny_mobilenet(), "patch_size": None})
        assert backbone.patch_size == 8 and backbone.grid_shape == (4, 4)
        config = json.loads(json.dumps(backbone.get_config()))  # as config.json holds it
        assert config["stem"]["class_name"] == "MobileNetBackbone"
        vocabulary = ["[PAD]", "[OOV]"] + [f"w{i}" for i in range(28)]
        preprocessor = SimMIMVQAPreprocessor(
            tokenizer=SimMIMTokenizer(vocabulary),
            image_converter=SimMIMImageConverter(32),
            answers=["yes", "no", "red"],
            sequence_length=10,
        )
        vqa = SimMIMVQA(backbone, 3, preprocessor=preprocessor)
        vqa.compile(keras.optimizers.Adam(1e-3))
        x = tiny_inputs(batch=8, length=10)
        stem = backbone.get_layer("patch_embedding").backbone
        before = [np.array(w) for w in stem.trainable_weights]
        vqa.fit(x, np.arange(8) % 3, batch_size=8, epochs=1, verbose=0)
        assert any(
            not np.array_equal(b, np.array(w))
            for b, w in zip(before, stem.trainable_weights, strict=True)
        ), "the image backbone's weights did not train"

        # The export loads the run as a preset: its answers equal the
        # trained model's only if the stem's config and weights came back.
        run = str(tmp_path / "run")
        vqa.save_to_preset(run)

        RunConfig(data=str(tmp_path), preset="tiny", max_sequence_length=10, seed=0).save(
            os.path.join(run, "run_config.json")
        )
        report = export_run(
            run, str(tmp_path / "export"), variants=("float32",), formats=("tflite",)
        )
        assert report["gpu_delegate_problems"] == {"float32": []}
        path = str(tmp_path / "export" / "model_float32.tflite")
        assert non_builtin_ops(read_ops(path)) == []
        runner = Interpreter(path).get_signature_runner()
        lite = np.concatenate(
            [
                runner(
                    images=x["images"][i : i + 1].astype(np.float32),
                    token_ids=x["token_ids"][i : i + 1],
                )["probabilities"]
                for i in range(8)
            ]
        )
        expected = keras.ops.softmax(vqa.predict(x, verbose=0)).numpy()
        np.testing.assert_allclose(lite, expected, atol=1e-4)
