"""The relation-network baselines of benchmarks/baselines build, train a
step and keep the relation module's defining property: the sum over pairs
does not depend on the order of the objects."""

import os
import sys

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.baselines.relation_network import _PairwiseRelations, cnn_mlp, cnn_rn  # noqa: E402
from tests.conftest import tiny_inputs  # noqa: E402


def test_baselines_give_logits_and_learn():
    x = tiny_inputs(batch=8, length=8, real=5, image_size=32)
    x["padding_mask"] = x["padding_mask"].astype("int32")
    y = np.arange(8) % 4
    for factory in (cnn_mlp, cnn_rn):
        keras.utils.set_random_seed(0)
        model = factory(32, 30, 4, width=32)
        assert model.predict(x, verbose=0).shape == (8, 4)
        model.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        losses = model.fit(x, y, epochs=15, batch_size=8, verbose=0).history["loss"]
        assert losses[-1] < losses[0], (factory.__name__, losses)


def test_relation_module_is_invariant_to_object_order():
    rng = np.random.default_rng(0)
    objects = rng.normal(size=(2, 6, 5)).astype("float32")
    question = rng.normal(size=(2, 3)).astype("float32")
    relations = _PairwiseRelations(16)
    out = np.asarray(relations(objects, question))
    shuffled = np.asarray(relations(objects[:, rng.permutation(6)], question))
    np.testing.assert_allclose(out, shuffled, rtol=1e-4, atol=1e-4)
