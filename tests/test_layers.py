import numpy as np
import pytest

from simmim_tf.layers import (
    AnswerHead,
    LayerNorm,
    MultiHeadAttention,
    PatchEmbedding,
    QuestionEncoder,
    SemanticMemory,
    TextualAttention,
    TransformerBlock,
    VisualAttention,
)
from tests.test_case import run_layer_test

RNG = np.random.default_rng(0)
QUESTION = RNG.normal(size=(2, 6, 16)).astype("float32")
REGIONS = RNG.normal(size=(2, 9, 16)).astype("float32")
MASK = np.array([[True] * 4 + [False] * 2, [True] * 6])


def test_multi_head_attention_weights_sum_to_one_over_kept_keys():
    layer = MultiHeadAttention(num_heads=2, key_dim=8)
    out, weights = run_layer_test(
        layer, (REGIONS, QUESTION), [(2, 9, 16), (2, 2, 9, 6)], {"key_mask": MASK}
    )
    weights = np.asarray(weights)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    assert np.all(weights[0, :, :, 4:] < 1e-8)  # padding keys get (almost) no weight


def test_visual_attention_shapes_and_softmax():
    _, weights = run_layer_test(
        VisualAttention(num_heads=2, key_dim=8), (QUESTION, REGIONS), [(2, 6, 16), (2, 2, 6, 9)]
    )
    # (batch, heads, question tokens, regions), a distribution over regions.
    np.testing.assert_allclose(np.asarray(weights).sum(-1), 1.0, atol=1e-5)
    assert np.all(np.asarray(weights) > 0)


def test_textual_attention_honours_padding():
    layer = TextualAttention(num_heads=2, key_dim=8)
    _, weights = run_layer_test(layer, (REGIONS, QUESTION, MASK), [(2, 9, 16), (2, 2, 9, 6)])
    weights = np.asarray(weights)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    assert np.all(weights[0, ..., 4:] < 1e-8)
    # Changing the padded words' features changes nothing.
    noisy = QUESTION.copy()
    noisy[0, 4:] = 100.0
    out_a, _ = layer(REGIONS, QUESTION, MASK)
    out_b, _ = layer(REGIONS, noisy, MASK)
    np.testing.assert_allclose(np.asarray(out_a)[0], np.asarray(out_b)[0], atol=1e-5)


def test_semantic_memory_reads_both_modalities():
    layer = SemanticMemory(num_slots=3, num_layers=2, num_heads=2, intermediate_dim=32)
    memory, read = run_layer_test(layer, (REGIONS, QUESTION, MASK), [(2, 3, 16), (2, 2, 3, 15)])
    read = np.asarray(read)
    np.testing.assert_allclose(read.sum(-1), 1.0, atol=1e-5)
    assert np.all(read[0, ..., 9 + 4 :] < 1e-8)  # regions first, then words; padding unread
    # The memory depends on the image and on the question.
    m_image, _ = layer(REGIONS * 2.0, QUESTION, MASK)
    m_text, _ = layer(REGIONS, QUESTION * 2.0, MASK)
    assert not np.allclose(np.asarray(m_image), np.asarray(memory))
    assert not np.allclose(np.asarray(m_text), np.asarray(memory))


def test_transformer_block_and_layer_norm():
    run_layer_test(TransformerBlock(2, 8, 32), (QUESTION,), [(2, 6, 16)], {"padding_mask": MASK})
    out = run_layer_test(LayerNorm(), (QUESTION,), [(2, 6, 16)])
    np.testing.assert_allclose(np.asarray(out).mean(-1), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(out).std(-1), 1.0, atol=1e-3)


@pytest.mark.parametrize("stem,patch,grid", [("patchify", 8, 4), ("conv", 8, 4), ("conv", 4, 8)])
def test_patch_embedding_grid(stem, patch, grid):
    images = RNG.integers(0, 256, (2, 32, 32, 3)).astype("uint8")
    layer = PatchEmbedding(hidden_dim=16, patch_size=patch, stem=stem)
    run_layer_test(layer, (images,), [(2, grid * grid, 16)])
    assert layer.grid_shape(32, 32) == (grid, grid)


def test_patch_embedding_rejects_bad_arguments():
    with pytest.raises(ValueError, match="stem"):
        PatchEmbedding(16, 8, stem="vit")
    with pytest.raises(ValueError, match="power of two"):
        PatchEmbedding(16, 6, stem="conv")


def test_question_encoder_ignores_padding():
    ids = np.array([[5, 7, 9, 0, 0, 0]], "int32")
    layer = QuestionEncoder(20, 12, 16, 1, 2, 32)
    run_layer_test(layer, (ids, ids != 0), [(1, 6, 16)])
    longer = np.pad(ids, ((0, 0), (0, 4)))
    short_out = np.asarray(layer(ids, ids != 0))[0, :3]
    long_out = np.asarray(layer(longer, longer != 0))[0, :3]
    np.testing.assert_allclose(short_out, long_out, atol=1e-5)


def test_answer_head_logits_stay_float32():
    pooled = RNG.normal(size=(3, 16)).astype("float32")
    run_layer_test(AnswerHead(num_answers=7, hidden_dim=8), (pooled,), [(3, 7)])
    mixed = AnswerHead(7, 8, dtype="mixed_float16")
    assert mixed(pooled).dtype == "float32"
