"""Attention maps for people: the reductions in simmim_tf.explanation and
the figure in simmim_tf.plotting."""

import numpy as np
import pytest
from PIL import Image

from simmim_tf.explanation import (
    attention_in_box,
    explain,
    memory_map,
    named_object_box,
    visual_map,
    word_weights,
)
from simmim_tf.plotting import save_attention_overlay


def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def test_visual_map_ignores_padding_and_sums_to_one():
    rng = np.random.default_rng(0)
    weights = _softmax(rng.normal(size=(2, 5, 6)))  # (heads, tokens, regions)
    mask = np.array([True, True, True, False, False])
    out = visual_map(weights, mask, (2, 3))
    assert out.shape == (2, 3)
    np.testing.assert_allclose(out.sum(), 1.0, rtol=1e-6)
    # Changing a padded token's weights changes nothing.
    weights[:, 4] = _softmax(rng.normal(size=(2, 6)))
    np.testing.assert_allclose(visual_map(weights, mask, (2, 3)), out, rtol=1e-6)


def test_memory_map_splits_image_from_words():
    # 4 regions then 2 words; all heads and slots put 0.6 on regions.
    weights = np.tile(np.array([0.3, 0.1, 0.1, 0.1, 0.2, 0.2]), (2, 3, 1))
    out, share = memory_map(weights, num_regions=4, grid_shape=(2, 2))
    np.testing.assert_allclose(share, 0.6, rtol=1e-6)
    np.testing.assert_allclose(out, [[0.5, 1 / 6], [1 / 6, 1 / 6]], rtol=1e-6)


def test_word_weights_cover_real_words_only():
    weights = _softmax(np.random.default_rng(1).normal(size=(2, 4, 6)))  # (heads, regions, tokens)
    mask = np.array([True, True, True, True, False, False])
    out = word_weights(weights, mask)
    assert out.shape == (4,)
    np.testing.assert_allclose(out.sum(), 1.0, rtol=1e-6)


def test_attention_in_box():
    uniform = np.full((4, 4), 1 / 16)
    # A uniform map puts its weight in proportion to area: 8×8 of 32×32.
    assert attention_in_box(uniform, 32, 8, (0, 0, 8, 8)) == pytest.approx(1 / 16)
    # A one-hot map: all inside its region's box, none outside it.
    one_hot = np.zeros((4, 4))
    one_hot[1, 2] = 1.0  # pixels x 16..23, y 8..15
    assert attention_in_box(one_hot, 32, 8, (16, 8, 24, 16)) == pytest.approx(1.0)
    assert attention_in_box(one_hot, 32, 8, (0, 0, 16, 32)) == pytest.approx(0.0)
    # Half the region's pixels → half its weight.
    assert attention_in_box(one_hot, 32, 8, (16, 8, 20, 16)) == pytest.approx(0.5)


def test_explain_a_keras_answer(trained_export):
    from simmim_tf.data.vqa_dataset import load_split
    from simmim_tf.training.runs import load_run

    model = load_run(trained_export["run"])
    tokenizer = model.preprocessor.question_tokenizer()
    test = load_split(trained_export["data"], "test")
    image, question = test.images[test.image_index[0]], test.questions[0]
    e = explain(model, image, question)
    logits = model.predict(
        {
            "images": image[None],
            "token_ids": tokenizer.encode(question)[0][None],
            "padding_mask": tokenizer.encode(question)[1][None],
        },
        verbose=0,
    )
    assert e.answer == model.preprocessor.answers[int(np.argmax(logits))]
    assert e.top_k[0] == (e.answer, pytest.approx(e.probability))
    assert e.visual_map.shape == e.memory_map.shape == model.backbone.grid_shape
    assert len(e.word_weights) == len(e.words) == tokenizer.encode(question)[1].sum()
    assert 0.0 <= e.memory_image_share <= 1.0


@pytest.mark.parametrize("full", [False, True])
def test_attention_figure_has_a_panel_per_map(tmp_path, full):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (32, 32, 3)).astype(np.uint8)
    extra = (
        dict(
            memory_map=rng.random((4, 4)),
            words=["a", "b"],
            word_weights=[0.3, 0.7],
            anchor_map=rng.random((4, 4)),
        )
        if full
        else {}
    )
    path = tmp_path / "overlay.png"
    save_attention_overlay(image, rng.random((4, 4)), "a b?", "yes", str(path), 0.9, **extra)
    width, height = Image.open(path).size
    # 3.2 inches per panel at 120 dpi: 2 panels, or 5 with anchor, memory and words.
    assert width == pytest.approx(3.2 * 120 * (5 if full else 2), abs=2)


def test_named_object_box_finds_the_colour_the_question_names():
    objects = [
        {"color": "red", "x": 10, "y": 20, "size": 10},
        {"color": "blue", "x": 50, "y": 40, "size": 6},
    ]
    assert named_object_box("what is the shape of the blue object?", objects) == (47, 37, 53, 43)
    assert named_object_box("closest to the red object?", objects) == (5, 15, 15, 25)
    assert named_object_box("how many objects are there?", objects) is None


def test_attention_on_named_objects_of_a_trained_run(trained_export):
    from simmim_tf.data.anchor_targets import attribute_vocabulary
    from simmim_tf.data.vqa_dataset import load_split, read_scenes
    from simmim_tf.explanation import attention_on_named_objects
    from simmim_tf.training.runs import load_run

    model = load_run(trained_export["run"])
    test = load_split(trained_export["data"], "test")
    scenes = read_scenes(trained_export["data"])
    out = attention_on_named_objects(model, test, scenes, every=50)
    assert out["questions"] == len(range(0, len(test), 50))  # every question names a colour
    assert 0.0 <= out["share"] <= 1.0
    # A 10×10 px box of a 75×75 image gets about 1.8% of uniform attention.
    assert out["uniform_share"] == pytest.approx(100 / 75**2, rel=0.35)
    # The tiny preset's anchor, trained onto the named object, is measured too.
    assert 0.0 <= out["anchor_share"] <= 1.0
    # Batched (5 at a time), the shares are `explain`'s, one question at a time.
    picked = range(0, len(test), 50)
    one_by_one = [
        explain(model, test.images[test.image_index[i]], test.questions[i]) for i in picked
    ]
    vocabulary = attribute_vocabulary(scenes.values())
    boxes = [
        named_object_box(
            test.questions[i], scenes[test.image_paths[test.image_index[i]]], vocabulary
        )
        for i in picked
    ]
    size, patch = model.backbone.image_size, model.backbone.patch_size
    batched = attention_on_named_objects(model, test, scenes, every=50, batch_size=5)
    for key, maps in (("share", "visual_map"), ("anchor_share", "anchor_map")):
        want = np.mean([attention_in_box(getattr(e, maps), size, patch, box)
                        for e, box in zip(one_by_one, boxes, strict=True)])  # fmt: skip
        assert batched[key] == pytest.approx(want, abs=1e-4), key
