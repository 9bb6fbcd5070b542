"""CNN+MLP and CNN+RN, the Sort-of-CLEVR models of Santoro et al. 2017.

"A simple neural network module for relational reasoning", appendix D: a CNN
of four convolutions (32, 64, 128, 256 channels, 3×3, stride 2, batch norm,
ReLU) turns the image into a grid of "objects", each tagged with its
coordinates. CNN+RN applies g (a 4-layer MLP) to every ordered pair of
objects together with the question, sums, and applies f (an MLP ending in
the answer logits). CNN+MLP replaces the relation module with an MLP on the
flattened CNN features and the question.

Scaled down for a 2-core CPU: g and f are `width` units wide (the paper used
2000-unit g layers for CLEVR); the default width is 256. The paper encodes a
Sort-of-CLEVR question as a fixed binary vector; here the question is the
bag of its words (a multi-hot vector over the vocabulary), which carries the
same information for these templated questions.

Both models take the inputs of `SimMIMVQA` ({"images", "token_ids",
"padding_mask"}) and return answer logits, so the same pipeline and the same
loss train all three.
"""

import keras
from keras import ops

CNN_CHANNELS = (32, 64, 128, 256)  # Santoro et al. 2017, appendix D


def _cnn(images):
    x = ops.cast(images, "float32") / 127.5 - 1.0
    for i, channels in enumerate(CNN_CHANNELS):
        x = keras.layers.Conv2D(channels, 3, strides=2, padding="same", name=f"conv_{i}")(x)
        x = keras.layers.BatchNormalization(name=f"conv_norm_{i}")(x)
        x = keras.layers.ReLU()(x)
    return x  # (batch, rows, cols, 256)


def _bag_of_words(token_ids, vocabulary_size):
    # (batch, vocabulary): 1 where the word occurs; padding (id 0) dropped.
    one_hot = ops.one_hot(token_ids, vocabulary_size)
    return ops.max(one_hot[:, :, 1:], axis=1)


def _inputs(image_size):
    return {
        "images": keras.Input((image_size, image_size, 3), dtype="uint8", name="images"),
        "token_ids": keras.Input((None,), dtype="int32", name="token_ids"),
        "padding_mask": keras.Input((None,), dtype="int32", name="padding_mask"),
    }


class _Coordinates(keras.layers.Layer):
    """Appends each grid cell's (x, y) in [-1, 1] to its features."""

    def call(self, grid):
        rows, cols = grid.shape[1], grid.shape[2]
        ys = ops.repeat(ops.linspace(-1.0, 1.0, rows)[:, None], cols, axis=1)
        xs = ops.repeat(ops.linspace(-1.0, 1.0, cols)[None, :], rows, axis=0)
        coords = ops.stack([xs, ys], axis=-1)[None]  # (1, rows, cols, 2)
        coords = ops.broadcast_to(coords, (ops.shape(grid)[0], rows, cols, 2))
        return ops.concatenate([grid, ops.cast(coords, grid.dtype)], axis=-1)


class _PairwiseRelations(keras.layers.Layer):
    """Σ over ordered object pairs (i, j) of g([o_i, o_j, q])."""

    def __init__(self, width, layers=4, **kwargs):
        super().__init__(**kwargs)
        self.width = width
        self.g = [
            keras.layers.Dense(width, activation="relu", name=f"g_{i}") for i in range(layers)
        ]

    def call(self, objects, question):
        n = objects.shape[1]
        left = ops.repeat(objects[:, :, None, :], n, axis=2)  # (batch, n, n, d)
        right = ops.repeat(objects[:, None, :, :], n, axis=1)  # (batch, n, n, d)
        q = ops.broadcast_to(
            question[:, None, None, :], (ops.shape(objects)[0], n, n, question.shape[-1])
        )
        x = ops.concatenate([left, right, q], axis=-1)
        for layer in self.g:
            x = layer(x)
        return ops.sum(x, axis=(1, 2))  # (batch, width)


def cnn_rn(image_size, vocabulary_size, num_answers, width=256):
    """CNN + relation network (Santoro et al. 2017), as a functional Keras model."""
    inputs = _inputs(image_size)
    grid = _Coordinates()(_cnn(inputs["images"]))
    objects = keras.layers.Reshape((-1, grid.shape[-1]))(grid)  # (batch, rows*cols, 258)
    question = _bag_of_words(inputs["token_ids"], vocabulary_size)
    relations = _PairwiseRelations(width, name="g")(objects, question)
    x = keras.layers.Dense(width, activation="relu", name="f_0")(relations)
    x = keras.layers.Dense(width, activation="relu", name="f_1")(x)
    x = keras.layers.Dropout(0.5)(x)
    logits = keras.layers.Dense(num_answers, name="logits")(x)
    return keras.Model(inputs, logits, name="cnn_rn")


def cnn_mlp(image_size, vocabulary_size, num_answers, width=256):
    """CNN + MLP (Santoro et al. 2017's non-relational baseline)."""
    inputs = _inputs(image_size)
    features = keras.layers.Flatten()(_cnn(inputs["images"]))
    question = _bag_of_words(inputs["token_ids"], vocabulary_size)
    x = ops.concatenate([features, question], axis=-1)
    for i in range(4):
        x = keras.layers.Dense(width, activation="relu", name=f"mlp_{i}")(x)
    x = keras.layers.Dropout(0.5)(x)
    logits = keras.layers.Dense(num_answers, name="logits")(x)
    return keras.Model(inputs, logits, name="cnn_mlp")
