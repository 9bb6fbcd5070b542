"""Region targets from scenes, the grounding loss, image-grouped batches and
SimMIMVQATraining."""

import json
import warnings

import keras
import numpy as np
import pytest

from simmim_tf.data import sort_of_clevr
from simmim_tf.data.region_targets import region_targets
from simmim_tf.data.vqa_dataset import load_split, read_scenes
from simmim_tf.errors import SimMIMInputError
from simmim_tf.models import SimMIMBackbone, SimMIMVQA
from simmim_tf.models.grounding_loss import GroundingLoss
from simmim_tf.models.simmim_vqa_training import SimMIMVQATraining
from simmim_tf.preprocessing.answer_vocabulary import AnswerVocabulary
from simmim_tf.preprocessing.question_tokenizer import QuestionTokenizer
from simmim_tf.training.image_grouped_batches import image_grouped_batches
from tests.conftest import TINY_BACKBONE, tiny_inputs


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("sort_of_clevr"))
    sort_of_clevr.generate(root, num_images=12, seed=5, num_test=2, progress=False)
    return root


def test_region_targets_label_each_object_where_it_is(data):
    split = load_split(data, "train")
    targets = region_targets(data, split.image_paths, (10, 10))
    assert list(targets.vocabularies) == ["color", "shape"]
    assert targets.attribute_sizes == [7, 3]
    assert targets.targets.shape == (10, 100, 4)
    scenes = read_scenes(data)
    for n, path in enumerate(split.image_paths):
        t = targets.targets[n]
        for o in scenes[path]:
            # The region holding the centre (75 px over 10 regions) has the object's labels.
            region = int(o["y"] * 10 / 75) * 10 + int(o["x"] * 10 / 75)
            color = targets.vocabularies["color"].index(o["color"]) + 1
            shape = targets.vocabularies["shape"].index(o["shape"]) + 1
            assert tuple(t[region, :2]) == (color, shape)
            # The offset leads from the region's centre back to the object's.
            centre = ((region % 10 + 0.5) * 7.5, (region // 10 + 0.5) * 7.5)
            np.testing.assert_allclose(
                np.array(centre) + 7.5 * t[region, 2:], (o["x"], o["y"]), atol=1e-4
            )
            assert np.all(np.abs(t[region, 2:]) <= 10 / 2 / 7.5 + 1e-6)  # within half an object
        # Six objects of at most 10×10 px cover 1 to 4 region centres each.
        labelled = (t[:, 0] > 0).sum()
        assert 6 <= labelled <= 24
        assert np.all((t[:, 0] > 0) == (t[:, 1] > 0))
        assert np.all(t[t[:, 0] == 0, 2:] == 0)


def test_region_targets_errors_name_the_file(data, tmp_path):
    split = load_split(data, "train")
    with pytest.raises(SimMIMInputError, match="no scene for images/999.png"):
        region_targets(data, ["images/999.png"], (10, 10))
    with pytest.raises(SimMIMInputError, match="color='red', not seen"):
        region_targets(data, split.image_paths, (10, 10), {"color": ["blue"], "shape": ["circle"]})


def test_grounding_loss_is_cross_entropy_plus_offset_error_on_objects():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 4, 7)).astype("float32")
    ids = rng.integers(0, [3, 2], size=(2, 4, 2)).astype("float32")
    offsets = rng.normal(size=(2, 4, 2)).astype("float32")
    targets = np.concatenate([ids, offsets], axis=-1)
    expected = np.mean(
        [
            keras.losses.sparse_categorical_crossentropy(ids[..., 0], logits[..., :3], True),
            keras.losses.sparse_categorical_crossentropy(ids[..., 1], logits[..., 3:5], True),
        ]
    )
    occupied = ids[..., 0] > 0
    error = ((logits[..., 5:] - offsets) ** 2).sum(-1)
    per_image = [error[b][occupied[b]].mean() if occupied[b].any() else 0.0 for b in range(2)]
    expected += 0.5 * np.mean(per_image)
    loss = GroundingLoss([3, 2], offset_weight=0.5)
    np.testing.assert_allclose(float(loss(targets, logits)), expected, rtol=1e-5)


def test_image_grouped_batches_use_every_question_once(data):
    split = load_split(data, "train")
    ids = np.arange(len(split) * 3, dtype=np.int32).reshape(-1, 3) + 1
    answers = np.arange(len(split), dtype=np.int32)
    targets = np.arange(len(split.images), dtype=np.float32).reshape(-1, 1, 1)
    ds = image_grouped_batches(split, ids, answers, 16, 4, region_targets=targets)
    for _ in range(2):  # two epochs, reshuffled
        seen = []
        for x, y in ds:
            questions = y["answers"].numpy()
            seen += list(questions)
            assert len(questions) <= 16 and x["images"].shape[0] <= 4
            # Each question points at its own image, and its targets follow the image.
            images = split.images[split.image_index[questions]]
            np.testing.assert_array_equal(x["images"].numpy()[x["image_index"].numpy()], images)
            picked = y["grounding"].numpy()[x["image_index"].numpy(), 0, 0]
            np.testing.assert_array_equal(picked, split.image_index[questions])
            np.testing.assert_array_equal(x["token_ids"].numpy(), ids[questions])
        assert sorted(seen) == list(range(len(split)))
    with pytest.raises(ValueError, match="questions_per_image"):
        image_grouped_batches(split, ids, answers, 16, 0)


def test_training_wrapper_trains_the_served_model(data):
    keras.utils.set_random_seed(0)
    split = load_split(data, "train")
    backbone = SimMIMBackbone(**{**TINY_BACKBONE, "image_size": 75, "vocabulary_size": 60})
    vocabulary = AnswerVocabulary.fit(split.answers)
    vqa = SimMIMVQA(backbone, num_answers=len(vocabulary))
    targets = region_targets(data, split.image_paths, backbone.grid_shape)
    model = SimMIMVQATraining(vqa, targets.attribute_sizes, grounding_weight=1.0)
    model.compile(keras.optimizers.AdamW(3e-3))
    ids, _ = QuestionTokenizer.fit(split.questions, 10).encode_batch(split.questions)
    answers = np.array([vocabulary.id(a) for a in split.answers], np.int32)
    ds = image_grouped_batches(split, ids, answers, 40, 10, targets.targets)
    x0 = {
        "images": split.images[split.image_index[:5]],
        "token_ids": ids[:5],
        "padding_mask": ids[:5] != 0,
    }
    before_logits = np.asarray(vqa(x0))
    history = model.fit(ds, epochs=8, verbose=0, shuffle=False).history
    assert history["grounding_loss"][-1] < 0.7 * history["grounding_loss"][0], history
    assert history["answers_loss"][-1] < history["answers_loss"][0], history
    # The wrapper's answers are the served model's answers.
    assert not np.allclose(np.asarray(vqa(x0)), before_logits)
    wrapped = model({**x0, "image_index": np.arange(5, dtype=np.int32)})["answers"]
    np.testing.assert_allclose(np.asarray(wrapped), np.asarray(vqa(x0)), atol=1e-4)
    json.dumps(model.vqa.get_config())  # the served model's config is plain JSON


def test_refined_positions_are_trained_by_the_offset_target(data):
    """With relational `refine_positions`, the grounding output's offset columns
    are the relational attention's own predictions, which fit then trains."""
    keras.utils.set_random_seed(0)
    split = load_split(data, "train")
    backbone = SimMIMBackbone(**{**TINY_BACKBONE, "image_size": 75, "vocabulary_size": 60})
    vocabulary = AnswerVocabulary.fit(split.answers)
    vqa = SimMIMVQA(backbone, num_answers=len(vocabulary))
    targets = region_targets(data, split.image_paths, backbone.grid_shape)
    model = SimMIMVQATraining(vqa, targets.attribute_sizes, grounding_weight=1.0)
    relational = backbone.get_layer("relational_attention")
    # Random offsets (they start at zero): the columns below must be these.
    kernel, bias = relational.position_offset.get_weights()
    random_kernel = np.random.default_rng(0).normal(size=kernel.shape)
    relational.position_offset.set_weights([random_kernel, bias])
    images = split.images[:3]
    out = model(
        {
            "images": images,
            "image_index": np.zeros(1, np.int32),
            "token_ids": np.ones((1, 10), np.int32),
            "padding_mask": np.ones((1, 10), bool),
        }
    )
    # With the offset target, it alone trains the positions (the answers' gradient stopped).
    assert relational.positions_from_target_only
    predicted = relational.region_offsets(backbone.encode_image(images))
    np.testing.assert_allclose(np.asarray(out["grounding"])[..., -2:], predicted, atol=1e-5)
    model.compile(keras.optimizers.AdamW(3e-3))
    ids, _ = QuestionTokenizer.fit(split.questions, 10).encode_batch(split.questions)
    answers = np.array([vocabulary.id(a) for a in split.answers], np.int32)
    ds = image_grouped_batches(split, ids, answers, 40, 10, targets.targets)
    before = np.array(relational.position_offset.kernel)
    model.fit(ds, epochs=2, verbose=0, shuffle=False)
    assert not np.allclose(before, np.array(relational.position_offset.kernel))
    assert backbone.get_config()["relational"]["refine_positions"] is True


def test_the_answers_train_the_refined_positions():
    """On data without scenes, the answers alone train the refined
    positions: the plain model's gradient reaches their offset prediction."""
    keras.utils.set_random_seed(0)
    backbone = SimMIMBackbone(**TINY_BACKBONE)  # positions refined
    vqa = SimMIMVQA(backbone, num_answers=5)
    position_offset = backbone.get_layer("relational_attention").position_offset
    offset = {id(v) for v in position_offset.weights}
    assert len(offset) == 2 and offset <= {id(v) for v in vqa.trainable_variables}
    vqa.compile(optimizer=keras.optimizers.SGD(0.5))
    before = np.array(position_offset.kernel)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        vqa.fit(tiny_inputs(batch=8), np.arange(8) % 5, epochs=3, verbose=0)
    assert not [w for w in caught if "Gradients do not exist" in str(w.message)]
    assert np.abs(np.array(position_offset.kernel) - before).max() > 1e-6
    assert not backbone.get_layer("relational_attention").positions_from_target_only


def test_without_relational_attention_the_grounding_head_predicts_offsets():
    """A backbone without the relational attention (`relational=None`) has
    no refined positions: grounding trains the grounding head's own offsets."""
    keras.utils.set_random_seed(0)
    backbone = SimMIMBackbone(**{**TINY_BACKBONE, "relational": None})
    model = SimMIMVQATraining(SimMIMVQA(backbone, num_answers=5), [3, 2], grounding_weight=1.0)
    images = np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3)).astype("uint8")
    inputs = {**tiny_inputs(), "images": images, "image_index": np.arange(2, dtype="int32")}
    out = model(inputs)
    grounding = model.grounding_head(backbone.encode_image(images))
    np.testing.assert_allclose(np.asarray(out["grounding"]), np.asarray(grounding), atol=1e-5)


def test_anchor_targets_cover_the_named_object(data):
    from simmim_tf.data.anchor_targets import anchor_targets, named_object

    split = load_split(data, "train")
    scenes = read_scenes(data)
    targets = anchor_targets(data, split, (10, 10), 8)
    assert targets.shape == (len(split), 100)
    # Sort-of-CLEVR names one object of a unique colour in every question.
    assert (targets.sum(axis=1) > 0).all()
    for q in range(0, len(split), 97):
        obj = named_object(split.questions[q], scenes[split.image_paths[split.image_index[q]]])
        centre = int(obj["y"] // 8) * 10 + int(obj["x"] // 8)
        assert targets[q, centre] == 1
        assert targets[q].sum() <= 9  # a 10-px object spans at most 3x3 regions of 8 px
    objects = [
        {"color": "red", "x": 5, "y": 5, "size": 4},
        {"color": "red", "x": 9, "y": 9, "size": 4},
    ]
    assert named_object("what shape is the red object?", objects) is None  # not unique
    assert named_object("how many objects?", objects) is None


def test_named_object_reads_clevr2d_descriptions():
    from simmim_tf.data.anchor_targets import attribute_vocabulary, named_object

    objects = [
        {"color": "red", "shape": "circle", "size_name": "large"},
        {"color": "red", "shape": "square", "size_name": "small"},
        {"color": "blue", "shape": "circle", "size_name": "small"},
    ]
    vocabulary = {**attribute_vocabulary([objects]), "color": {"red", "blue", "brown"}}
    name = lambda q, **kw: named_object(q, objects, vocabulary=vocabulary, **kw)  # noqa: E731
    assert name("is the red square left of the blue thing?") is objects[1]
    assert name("what color is the object closest to the large thing?") is objects[0]
    assert name("is the small circle above the red circle?") is objects[2]
    assert name("what shape is the red object?") is None  # two red objects
    assert name("how many red circles are there?") is None  # plural: not one object
    # A colour no object has is still a colour: "brown square" is not "square".
    assert name("is there a brown square?") is None
    # The first rule (a unique colour word) misses what descriptions find.
    assert name("is the red square left of the blue thing?", named_by="colour") is None
    with pytest.raises(ValueError, match="named_by"):
        name("x", named_by="size")

    from simmim_tf.data.anchor_targets import named_objects

    pair = named_objects("is the red square left of the blue thing?", objects, vocabulary)
    assert pair == [objects[1], objects[2]]
    assert named_objects("what shape is the large thing?", objects, vocabulary) == [
        objects[0],
        None,
    ]


def test_two_anchor_targets_and_their_loss(data):
    from simmim_tf.data.anchor_targets import anchor_targets
    from simmim_tf.models.anchor_loss import AnchorLoss

    split = load_split(data, "train")
    one = anchor_targets(data, split, (10, 10), 8)
    two = anchor_targets(data, split, (10, 10), 8, num_anchors=2)
    assert two.shape == (len(split), 2, 100)
    np.testing.assert_array_equal(two[:, 0], one)
    # Sort-of-CLEVR's binary and relational questions name one object: no second target.
    assert two[:, 1].sum() == 0
    # The loss takes (batch, anchors, regions), skips an anchor without a
    # target, and does not dilute the other's (anchor 0 as with one anchor).
    target = np.zeros((1, 2, 4), "float32")
    target[0, 0, 1] = 1.0
    attention = np.full((1, 2, 4), 0.25, "float32")
    np.testing.assert_allclose(float(AnchorLoss()(target, attention)), -np.log(0.25), rtol=1e-4)


def test_anchor_loss_rewards_attention_on_the_object_and_skips_unnamed():
    from simmim_tf.models.anchor_loss import AnchorLoss

    target = np.array([[0, 1, 1, 0], [0, 0, 0, 0]], np.float32)
    on = np.array([[0.0, 0.5, 0.5, 0.0], [0.25] * 4], np.float32)
    off = np.array([[0.9, 0.05, 0.0, 0.05], [0.25] * 4], np.float32)
    loss = AnchorLoss(reduction=None)
    on_loss, off_loss = np.asarray(loss(target, on)), np.asarray(loss(target, off))
    assert on_loss[0] == pytest.approx(0.0, abs=1e-5)
    assert off_loss[0] == pytest.approx(-np.log(0.05), rel=1e-4)
    assert on_loss[1] == off_loss[1] == 0.0  # no named object: no loss


def test_anchor_supervision_moves_the_anchor_onto_the_named_object(data):
    from simmim_tf.data.anchor_targets import anchor_targets

    keras.utils.set_random_seed(0)
    split = load_split(data, "train")
    config = {**TINY_BACKBONE, "image_size": 75, "vocabulary_size": 60, "image_layers": 0}
    backbone = SimMIMBackbone(**config)
    vocabulary = AnswerVocabulary.fit(split.answers)
    vqa = SimMIMVQA(backbone, num_answers=len(vocabulary))
    anchors = anchor_targets(data, split, backbone.grid_shape, backbone.patch_size)
    model = SimMIMVQATraining(vqa, anchor_weight=1.0)
    model.compile(keras.optimizers.AdamW(3e-3))
    ids, _ = QuestionTokenizer.fit(split.questions, 10).encode_batch(split.questions)
    answers = np.array([vocabulary.id(a) for a in split.answers], np.int32)
    ds = image_grouped_batches(split, ids, answers, 40, 10, anchor_targets=anchors)
    history = model.fit(ds, epochs=6, verbose=0, shuffle=False).history
    assert history["anchor_loss"][-1] < 0.7 * history["anchor_loss"][0], history["anchor_loss"]
    with pytest.raises(ValueError, match="needs a backbone with relational attention"):
        SimMIMVQATraining(
            SimMIMVQA(SimMIMBackbone(**{**config, "relational": None}), 3),
            anchor_weight=1.0,
        )
