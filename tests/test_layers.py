import keras
import numpy as np
import pytest
import tensorflow as tf

from simmim_tf.layers import (
    AnswerHead,
    FeedForward,
    GroundingHead,
    ImageEncoder,
    LayerNorm,
    MultiHeadAttention,
    MultiInputDense,
    PatchEmbedding,
    QuestionEncoder,
    RelationalAttention,
    SemanticMemory,
    TextualAttention,
    TransformerBlock,
    VisualAttention,
)
from simmim_tf.layers.image_encoder import (
    COORDINATE_FREQUENCIES,
    coordinate_features,
)
from simmim_tf.layers.relational_attention import region_centres
from tests.test_case import TestCase

RNG = np.random.default_rng(0)
QUESTION = RNG.normal(size=(2, 6, 16)).astype("float32")
REGIONS = RNG.normal(size=(2, 9, 16)).astype("float32")
MASK = np.array([[True] * 4 + [False] * 2, [True] * 6])


class TestLayers(TestCase):
    def test_multi_head_attention_weights_sum_to_one_over_kept_keys(self):
        layer = MultiHeadAttention(num_heads=2, key_dim=8)
        out, weights = self.run_layer_test(
            layer, (REGIONS, QUESTION), [(2, 9, 16), (2, 2, 9, 6)], {"key_mask": MASK}
        )
        weights = np.asarray(weights)
        np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
        assert np.all(weights[0, :, :, 4:] < 1e-8)  # padding keys get (almost) no weight

    def test_visual_attention_shapes_and_softmax(self):
        _, weights = self.run_layer_test(
            VisualAttention(num_heads=2, key_dim=8), (QUESTION, REGIONS), [(2, 6, 16), (2, 2, 6, 9)]
        )
        # (batch, heads, question tokens, regions), a distribution over regions.
        np.testing.assert_allclose(np.asarray(weights).sum(-1), 1.0, atol=1e-5)
        assert np.all(np.asarray(weights) > 0)

    def test_textual_attention_honours_padding(self):
        layer = TextualAttention(num_heads=2, key_dim=8)
        _, weights = self.run_layer_test(
            layer, (REGIONS, QUESTION, MASK), [(2, 9, 16), (2, 2, 9, 6)]
        )
        weights = np.asarray(weights)
        np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
        assert np.all(weights[0, ..., 4:] < 1e-8)
        # Changing the padded words' features changes nothing.
        noisy = QUESTION.copy()
        noisy[0, 4:] = 100.0
        out_a, _ = layer(REGIONS, QUESTION, MASK)
        out_b, _ = layer(REGIONS, noisy, MASK)
        np.testing.assert_allclose(np.asarray(out_a)[0], np.asarray(out_b)[0], atol=1e-5)

    def test_semantic_memory_reads_both_modalities(self):
        layer = SemanticMemory(num_slots=3, num_layers=2, num_heads=2, intermediate_dim=32)
        memory, read = self.run_layer_test(
            layer, (REGIONS, QUESTION, MASK), [(2, 3, 16), (2, 2, 3, 15)]
        )
        read = np.asarray(read)
        np.testing.assert_allclose(read.sum(-1), 1.0, atol=1e-5)
        assert np.all(read[0, ..., 9 + 4 :] < 1e-8)  # regions first, then words; padding unread
        # The memory depends on the image and on the question.
        m_image, _ = layer(REGIONS * 2.0, QUESTION, MASK)
        m_text, _ = layer(REGIONS, QUESTION * 2.0, MASK)
        assert not np.allclose(np.asarray(m_image), np.asarray(memory))
        assert not np.allclose(np.asarray(m_text), np.asarray(memory))

    def test_transformer_block_and_layer_norm(self):
        self.run_layer_test(
            TransformerBlock(2, 8, 32), (QUESTION,), [(2, 6, 16)], {"padding_mask": MASK}
        )
        out = self.run_layer_test(LayerNorm(), (QUESTION,), [(2, 6, 16)])
        np.testing.assert_allclose(np.asarray(out).mean(-1), 0.0, atol=1e-5)
        np.testing.assert_allclose(np.asarray(out).std(-1), 1.0, atol=1e-3)

    @pytest.mark.parametrize(
        "stem,patch,grid", [("patchify", 8, 4), ("conv", 8, 4), ("conv", 4, 8)]
    )
    def test_patch_embedding_grid(self, stem, patch, grid):
        images = RNG.integers(0, 256, (2, 32, 32, 3)).astype("uint8")
        layer = PatchEmbedding(hidden_dim=16, patch_size=patch, stem=stem)
        self.run_layer_test(layer, (images,), [(2, grid * grid, 16)])
        assert layer.grid_shape(32, 32) == (grid, grid)

    def test_patch_embedding_rejects_bad_arguments(self):
        with pytest.raises(ValueError, match="stem"):
            PatchEmbedding(16, 8, stem="vit")
        with pytest.raises(ValueError, match="power of two"):
            PatchEmbedding(16, 6, stem="conv")

    def test_question_encoder_ignores_padding(self):
        ids = np.array([[5, 7, 9, 0, 0, 0]], "int32")
        layer = QuestionEncoder(20, 12, 16, 1, 2, 32)
        self.run_layer_test(layer, (ids, ids != 0), [(1, 6, 16)])
        longer = np.pad(ids, ((0, 0), (0, 4)))
        short_out = np.asarray(layer(ids, ids != 0))[0, :3]
        long_out = np.asarray(layer(longer, longer != 0))[0, :3]
        np.testing.assert_allclose(short_out, long_out, atol=1e-5)

    def test_answer_head_logits_stay_float32(self):
        pooled = RNG.normal(size=(3, 16)).astype("float32")
        self.run_layer_test(AnswerHead(num_answers=7, hidden_dim=8), (pooled,), [(3, 7)])
        mixed = AnswerHead(7, 8, dtype="mixed_float16")
        assert mixed(pooled).dtype == "float32"

    def test_image_encoder_relates_regions_and_knows_their_place(self):
        layer = ImageEncoder(num_layers=2, num_heads=2, intermediate_dim=32, grid_shape=(3, 3))
        out = self.run_layer_test(layer, (REGIONS,), [(2, 9, 16)])
        # Self-attention: changing one region changes the others' outputs.
        changed = REGIONS.copy()
        changed[:, 0] = (
            RNG.normal(size=(2, 16)) * 3.0
        )  # not a constant shift: LayerNorm removes those
        delta = np.abs(np.asarray(layer(changed)) - np.asarray(out))[:, 1:]
        assert delta.max() > 1e-3
        # With coordinates, moving content between regions is not merely a
        # permutation of the outputs; without them, self-attention is
        # permutation-equivariant, so it is.
        # (tests/test_ablation_backbone.py: without them, it is.)
        order = RNG.permutation(9)
        layer = ImageEncoder(2, 2, 32, (3, 3))
        permuted = np.asarray(layer(REGIONS[:, order]))
        assert not np.allclose(permuted, np.asarray(layer(REGIONS))[:, order], atol=1e-5)
        # A config of an earlier version loads with the values the layer has, and
        # refuses the ablations' others.
        old = {**layer.get_config(), "coordinates": True, "relative_position_bias": False}
        assert ImageEncoder.from_config(old).get_config() == layer.get_config()
        with pytest.raises(TypeError, match="relative_position_bias=True\\) is an ablation"):
            ImageEncoder.from_config({**old, "relative_position_bias": True})

    def test_image_encoder_without_layers_is_the_identity(self):
        out = ImageEncoder(0, 2, 32, (3, 3))(REGIONS)
        np.testing.assert_array_equal(np.asarray(out), REGIONS)
        with pytest.raises(ValueError, match="grid_shape"):
            ImageEncoder(1, 2, 32, (2, 2))(REGIONS)

    def test_coordinate_features_are_row_major_and_bounded(self):
        features = coordinate_features(2, 3)
        assert features.shape == (6, 2 + 4 * len(COORDINATE_FREQUENCIES))
        np.testing.assert_allclose(features[:3, 1], features[0, 1])  # first row: one y
        assert features[0, 0] < features[1, 0] < features[2, 0]  # x grows along a row
        assert np.all(np.abs(features) <= 1.0)

    def test_grounding_head_logits_per_attribute(self):
        out = self.run_layer_test(GroundingHead(attribute_sizes=[7, 3]), (REGIONS,), [(2, 9, 12)])
        assert out.dtype == "float32"
        assert GroundingHead([7, 3], dtype="mixed_float16")(REGIONS).dtype == "float32"

    def test_feed_forward_is_a_residual_mlp_per_token(self):
        layer = FeedForward(intermediate_dim=32)
        out = self.run_layer_test(layer, (QUESTION,), [(2, 6, 16)])
        # Token by token: changing one token leaves the others as they were.
        changed = QUESTION.copy()
        changed[:, 0] = RNG.normal(size=(2, 16))
        np.testing.assert_allclose(
            np.asarray(layer(changed))[:, 1:], np.asarray(out)[:, 1:], atol=1e-6
        )
        assert not np.allclose(np.asarray(out), QUESTION)

    def test_relational_attention_finds_the_anchor_and_uses_offsets(self):
        regions = RNG.normal(size=(2, 9, 16)).astype("float32")
        question = RNG.normal(size=(2, 16)).astype("float32")
        layer = RelationalAttention(num_heads=2, key_dim=8, grid_shape=(3, 3))
        features, anchor, weights = self.run_layer_test(
            layer, (question, regions), [(2, 16), (2, 9), (2, 2, 9)]
        )
        np.testing.assert_allclose(np.asarray(anchor).sum(-1), 1.0, atol=1e-5)
        np.testing.assert_allclose(np.asarray(weights).sum(-1), 1.0, atol=1e-5)
        # The same regions in another order: the anchor moves, so the offsets and
        # the read change (self-attention alone would only permute).
        order = RNG.permutation(9)
        moved, _, _ = layer(question, regions[:, order])
        assert not np.allclose(np.asarray(moved), np.asarray(features), atol=1e-4)
        np.testing.assert_allclose(region_centres(1, 2), [[0.25, 0.5], [0.75, 0.5]])

    def test_relational_attention_reads_offsets_from_the_anchor(self):
        regions = RNG.normal(size=(2, 9, 16)).astype("float32")
        question = RNG.normal(size=(2, 16)).astype("float32")
        layer = RelationalAttention(num_heads=2, key_dim=8, grid_shape=(3, 3), read_offsets=True)
        self.run_layer_test(layer, (question, regions), [(2, 16), (2, 9), (2, 2, 9)])
        # With the region features read as zeros, what is left of the output
        # beyond its bias is the heads' mean offset from the anchor.
        value = layer.value
        value.set_weights([np.zeros_like(w) for w in value.get_weights()])
        bias = layer.output_dense.get_weights()[1]
        features, anchor, weights = (np.asarray(t) for t in layer(question, regions))
        offsets = region_centres(3, 3)[None] - (anchor @ region_centres(3, 3))[:, None]
        moved = np.einsum("bhr,brd->bhd", weights, offsets).reshape(2, 4)
        kernel = layer.output_dense.get_weights()[0][-4:]  # rows of the offsets
        np.testing.assert_allclose(features, moved @ kernel + bias, atol=1e-5)
        assert np.abs(moved).max() > 1e-3

    def test_relational_attention_with_two_anchors_reads_their_offset(self):
        regions = RNG.normal(size=(2, 9, 16)).astype("float32")
        question = RNG.normal(size=(2, 16)).astype("float32")
        layer = RelationalAttention(num_heads=2, key_dim=8, grid_shape=(3, 3), num_anchors=2)
        self.run_layer_test(layer, (question, regions), [(2, 16), (2, 2, 9), (2, 2, 9)])
        # Region features read as zeros: the output beyond its bias is the
        # offset of the second anchor from the first (dx, dy, |dx|, |dy|).
        layer.value.set_weights([np.zeros_like(w) for w in layer.value.get_weights()])
        kernel, bias = layer.output_dense.get_weights()
        features, anchors, _ = (np.asarray(t) for t in layer(question, regions))
        np.testing.assert_allclose(anchors.sum(-1), 1.0, atol=1e-5)
        positions = anchors @ region_centres(3, 3)  # (batch, 2 anchors, 2)
        between = positions[:, 1] - positions[:, 0]
        between = np.concatenate([between, np.abs(between)], axis=-1)
        np.testing.assert_allclose(features, between @ kernel[-4:] + bias, atol=1e-5)
        with pytest.raises(ValueError, match="num_anchors"):
            RelationalAttention(num_heads=2, key_dim=8, grid_shape=(3, 3), num_anchors=3)

    def test_relational_attention_reads_what_lies_under_the_anchors(self):
        regions = RNG.normal(size=(2, 9, 16)).astype("float32")
        question = RNG.normal(size=(2, 16)).astype("float32")
        layer = RelationalAttention(
            num_heads=2, key_dim=8, grid_shape=(3, 3), num_anchors=2, read_anchors=True
        )
        self.run_layer_test(layer, (question, regions), [(2, 16), (2, 2, 9), (2, 2, 9)])
        # The heads' values zeroed: beyond the anchors' offset (4 rows before),
        # the output reads each anchor's mean projected region and their product.
        layer.value.set_weights([np.zeros_like(w) for w in layer.value.get_weights()])
        kernel, bias = layer.output_dense.get_weights()
        features, anchors, _ = (np.asarray(t) for t in layer(question, regions))
        positions = anchors @ region_centres(3, 3)
        between = positions[:, 1] - positions[:, 0]
        between = np.concatenate([between, np.abs(between)], axis=-1)
        normed = np.asarray(layer.region_norm(regions))
        under = anchors @ np.asarray(layer.anchor_value(normed))  # (batch, 2, 8)
        read = np.concatenate([between, under[:, 0], under[:, 1], under[:, 0] * under[:, 1]], -1)
        np.testing.assert_allclose(features, read @ kernel[-28:] + bias, atol=1e-4)
        assert np.abs(under[:, 0] * under[:, 1]).max() > 1e-3

    def test_relational_attention_projects_the_anchors_offset_on_question_directions(self):
        # A grid of 2 rows and 3 columns: the offset is in region sides (x by 3, y by 2).
        regions = RNG.normal(size=(2, 6, 16)).astype("float32")
        question = RNG.normal(size=(2, 16)).astype("float32")
        layer = RelationalAttention(2, 8, (2, 3), num_anchors=2, gated_between=True)
        self.run_layer_test(layer, (question, regions), [(2, 16), (2, 2, 6), (2, 2, 6)])
        # Everything else zeroed: the output is the offset between the anchors
        # along the question's directions, through its own projection.
        for dense in (layer.value, layer.output_dense):
            dense.set_weights([np.zeros_like(w) for w in dense.get_weights()])
        # Its projection starts at zero; a random one shows what it carries.
        assert not np.any(np.asarray(layer.between_output.kernel))
        layer.between_output.set_weights([RNG.normal(size=(4, 16)).astype("float32")])
        features, anchors, _ = (np.asarray(t) for t in layer(question, regions))
        positions = anchors @ region_centres(2, 3)  # (batch, 2 anchors, 2)
        offset = (positions[:, 1] - positions[:, 0]) * np.array([3, 2], "float32")
        q = np.asarray(layer.question_norm(question))
        directions = np.asarray(layer.between_directions(q)).reshape(2, 4, 2)
        along = np.einsum("bkd,bd->bk", directions, offset)
        np.testing.assert_allclose(features, along @ layer.between_output.kernel, atol=1e-4)
        assert np.abs(along).max() > 1e-3
        # The anchors swapped, the offset changes sign and so does the output.
        kernel, bias = layer.anchor_query.get_weights()
        swap = np.concatenate([kernel[:, 8:], kernel[:, :8]], axis=1)
        layer.anchor_query.set_weights([swap, np.concatenate([bias[8:], bias[:8]])])
        np.testing.assert_allclose(np.asarray(layer(question, regions)[0]), -features, atol=1e-4)
        with pytest.raises(ValueError, match="gated_between needs num_anchors=2"):
            RelationalAttention(2, 8, (2, 3), gated_between=True)

    def test_multi_input_dense_is_dense_on_the_concatenation(self):
        parts = [RNG.normal(size=(2, 3, 4)), 100 * RNG.normal(size=(2, 3, 1))]
        parts = [p.astype("float32") for p in parts]
        layer = MultiInputDense(6, activation="gelu")
        out = self.run_layer_test(layer, (parts,), [(2, 3, 6)])
        dense = keras.layers.Dense(6, activation="gelu")
        dense.build((None, None, 5))
        dense.set_weights(layer.get_weights())  # the same weights, kernel (5, 6)
        want = dense(np.concatenate(parts, axis=-1))
        np.testing.assert_allclose(np.asarray(out), np.asarray(want), rtol=1e-5, atol=1e-4)
        # Each input meets its own rows: swapping the inputs' order changes the answer.
        swapped = MultiInputDense(6, activation="gelu")
        swapped([parts[1], parts[0]])
        kernel, bias = layer.get_weights()
        swapped.set_weights([np.concatenate([kernel[4:], kernel[:4]]), bias])
        np.testing.assert_allclose(
            np.asarray(swapped([parts[1], parts[0]])), np.asarray(out), atol=1e-4
        )
        swapped.set_weights([kernel, bias])  # rows not swapped with the inputs: another answer
        assert not np.allclose(
            np.asarray(swapped([parts[1], parts[0]])), np.asarray(out), atol=1e-2
        )

    def test_relational_attention_offsets_in_region_sides(self):
        # A grid of 2 rows and 3 columns: x is scaled by 3, y by 2.
        regions = RNG.normal(size=(2, 6, 16)).astype("float32")
        question = RNG.normal(size=(2, 16)).astype("float32")
        layer = RelationalAttention(2, 8, (2, 3), offsets_in_regions=True)
        layer(question, regions)
        # The score MLP's output starts at zero: no offset bias yet.
        np.testing.assert_array_equal(np.asarray(layer.offset_bias.kernel), 0.0)
        out_kernel, out_bias = layer.offset_bias.get_weights()
        layer.offset_bias.set_weights([RNG.normal(size=out_kernel.shape), out_bias])
        # The squared distance left out (its scale is not one factor on a
        # non-square grid): the same MLP on image sides, its kernel's rows
        # for dx, dy, |dx|, |dy| scaled by the grid, gives the same answers.
        kernel, bias = layer.offset_hidden.get_weights()
        kernel[4] = 0.0
        layer.offset_hidden.set_weights([kernel, bias])
        self.run_layer_test(layer, (question, regions), [(2, 16), (2, 6), (2, 2, 6)])
        image_sides = RelationalAttention(2, 8, (2, 3))
        image_sides(question, regions)
        image_sides.set_weights(layer.get_weights())
        scale = np.array([3, 2, 3, 2, 0], "float32")[:, None]
        image_sides.offset_hidden.set_weights([kernel * scale, bias])
        for got, want in zip(image_sides(question, regions), layer(question, regions), strict=True):
            np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5)
        # Scaled the other way round (rows for x), the bias differs: the test sees the axes.
        swapped = np.array([2, 3, 2, 3, 0], "float32")[:, None]
        image_sides.offset_hidden.set_weights([kernel * swapped, bias])
        assert not np.allclose(image_sides(question, regions)[2], layer(question, regions)[2])

    def test_relational_attention_refines_positions_by_predicted_offsets(self):
        regions = RNG.normal(size=(2, 9, 16)).astype("float32")
        question = RNG.normal(size=(2, 16)).astype("float32")
        layer = RelationalAttention(
            num_heads=2, key_dim=8, grid_shape=(3, 3), read_offsets=True, refine_positions=True
        )
        self.run_layer_test(layer, (question, regions), [(2, 16), (2, 9), (2, 2, 9)])
        # The prediction starts at zero: a fresh layer's positions are the centres.
        fresh = RelationalAttention(2, 8, (3, 3), refine_positions=True)
        fresh(question, regions)
        np.testing.assert_array_equal(np.asarray(fresh.region_offsets(regions)), 0.0)
        # The answers train it through the positions, unless an offset
        # target alone is to (`positions_from_target_only`, set by the
        # training wrapper where the data has scenes).
        offset_kernel = fresh.position_offset.kernel
        for target_only in (False, True):
            fresh.positions_from_target_only = target_only
            with tf.GradientTape(persistent=True) as tape:
                features, _, relation = fresh(question, regions)
                through_positions = tf.reduce_sum(features**2) + tf.reduce_sum(relation**2)
                offset_target = tf.reduce_sum(
                    fresh.region_offsets(regions) ** 2 - fresh.region_offsets(regions)
                )
            gradient = tape.gradient(through_positions, offset_kernel)
            assert (gradient is None) == target_only
            assert np.abs(np.asarray(tape.gradient(offset_target, offset_kernel))).max() > 0
        # Positions are centres plus the predicted offsets (region sides →
        # image sides): the heads' mean offset from the anchor shows them.
        offset_weights = layer.position_offset.get_weights()
        layer.position_offset.set_weights([RNG.normal(size=w.shape) for w in offset_weights])
        layer.value.set_weights([np.zeros_like(w) for w in layer.value.get_weights()])
        bias = layer.output_dense.get_weights()[1]
        kernel = layer.output_dense.get_weights()[0][-4:]
        features, anchor, weights = (np.asarray(t) for t in layer(question, regions))
        predicted = np.asarray(layer.region_offsets(regions))  # (batch, regions, 2)
        assert predicted.shape == (2, 9, 2) and np.abs(predicted).max() > 1e-3
        positions = region_centres(3, 3)[None] + predicted / 3.0
        offsets = positions - np.einsum("br,brd->bd", anchor, positions)[:, None]
        moved = np.einsum("bhr,brd->bhd", weights, offsets).reshape(2, 4)
        np.testing.assert_allclose(features, moved @ kernel + bias, atol=1e-5)
