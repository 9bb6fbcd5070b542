"""The experiments' `AblationBackbone` (benchmarks/ablation_backbone.py) and
how configs of earlier versions, which held its switches, load."""

import numpy as np
import pytest

from benchmarks.ablation_backbone import AblationBackbone, AblationImageEncoder, pair_features
from simmim_tf.models import SimMIMBackbone
from simmim_tf.models.simmim_presets import RELATIONAL, preset_arguments
from tests.conftest import TINY_BACKBONE
from tests.test_case import TestCase


def inputs(batch=2):
    ids = np.random.default_rng(0).integers(1, 30, (batch, 6)).astype("int32")
    images = np.random.default_rng(1).integers(0, 255, (batch, 32, 32, 3)).astype("uint8")
    return {"images": images, "token_ids": ids, "padding_mask": ids != 0}


@pytest.mark.parametrize("part", ["visual_attention", "textual_attention", "semantic_memory"])
def test_a_switched_off_part_is_absent(part):
    backbone = AblationBackbone(**{**TINY_BACKBONE, f"use_{part}": False})
    assert part not in [layer.name for layer in backbone.layers]
    out = backbone(inputs())
    assert {"semantic_memory": "memory_attention"}.get(part, part) not in out
    assert tuple(out["pooled"].shape) == (2, 32)


def test_with_its_defaults_it_is_the_library_backbone():
    library = SimMIMBackbone(**TINY_BACKBONE)
    ablation = AblationBackbone(**TINY_BACKBONE)
    ablation.set_weights(library.get_weights())
    x = inputs()
    np.testing.assert_allclose(ablation(x)["pooled"], library(x)["pooled"], atol=1e-6)
    sequential = AblationBackbone(**TINY_BACKBONE, fusion="sequential")
    assert "region_mlp" in [layer.name for layer in sequential.layers]
    assert AblationBackbone.from_config(sequential.get_config()).get_config()["fusion"] == (
        "sequential"
    )


def test_configs_of_earlier_versions_load():
    config = {k: v for k, v in SimMIMBackbone(**TINY_BACKBONE).get_config().items()}
    del config["relational"]
    earlier = {
        **config,
        "use_relational_attention": True,
        "relational_anchors": 2,
        "relational_read_anchors": True,
        "relational_refine_positions": True,
        "relational_offsets_in_regions": True,
        "relational_gated_between": False,
        "relational_offsets": False,
        "image_coordinates": True,
        "image_relative_bias": False,
        "use_visual_attention": True,
        "fusion": "parallel",
    }
    backbone = SimMIMBackbone.from_config(earlier)
    assert backbone.relational["num_anchors"] == 2 and backbone.relational["refine_positions"]
    no_relational = SimMIMBackbone.from_config({**earlier, "use_relational_attention": False})
    assert no_relational.relational is None
    with pytest.raises(ValueError, match="use_visual_attention=False is an ablation"):
        SimMIMBackbone.from_config({**earlier, "use_visual_attention": False})


def test_preset_arguments_merge_the_relational_options():
    merged = preset_arguments("tiny", {"relational": {"gated_between": True}})
    assert merged["relational"] == {**RELATIONAL, "gated_between": True}
    assert preset_arguments("tiny", {"relational_gated_between": True}) == merged
    assert preset_arguments("tiny", {"relational": None})["relational"] is None
    with pytest.raises(ValueError, match="unknown `relational` option"):
        SimMIMBackbone(**{**TINY_BACKBONE, "relational": {"anchors": 2}})


class TestAblationImageEncoder(TestCase):
    def test_without_coordinates_it_is_equivariant_and_the_bias_breaks_that(self):
        rng = np.random.default_rng(2)
        regions = rng.normal(size=(1, 9, 16)).astype("float32")
        order = rng.permutation(9)
        plain = AblationImageEncoder(2, 2, 32, (3, 3), coordinates=False)
        out = np.asarray(plain(regions))
        np.testing.assert_allclose(np.asarray(plain(regions[:, order])), out[:, order], atol=1e-5)
        layer = AblationImageEncoder(
            1, 2, 32, (3, 3), coordinates=False, relative_position_bias=True
        )
        out = self.run_layer_test(layer, (regions,), [(1, 9, 16)])
        # Without coordinates, only the bias knows where regions are: a permutation
        # of the regions is no longer a permutation of the outputs.
        assert not np.allclose(np.asarray(layer(regions[:, order])), np.asarray(out)[:, order])
        features = pair_features(3, 3)
        assert features.shape == (9, 9, 4)
        np.testing.assert_allclose(features[4, 4], 0.0)  # a region and itself
        np.testing.assert_allclose(features[0, 8, 3], 2 * (2 / 3) ** 2, rtol=1e-6)  # corners
