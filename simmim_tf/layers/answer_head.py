"""Answer classifier head of the VQA task."""

import keras

from simmim_tf.api_export import simmim_export


@simmim_export
class AnswerHead(keras.layers.Layer):
    """Pooled features → hidden layer (GELU) → dropout → answer logits.

    Args:
        num_answers: int. Size of the answer vocabulary.
        hidden_dim: int. Size of the hidden layer.
        dropout: float. Dropout before the logits.

    Call arguments:
        pooled: (batch, dim).

    Returns:
        logits: (batch, num_answers), float32 even under mixed precision.
    """

    def __init__(self, num_answers, hidden_dim, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_answers = num_answers
        self.hidden_dim = hidden_dim
        self.dropout = dropout

    def build(self, pooled_shape):
        policy = self.dtype_policy
        self.hidden = keras.layers.Dense(
            self.hidden_dim, activation="gelu", name="hidden", dtype=policy
        )
        self.hidden_dropout = keras.layers.Dropout(self.dropout, dtype=policy)
        # Logits in float32: a softmax cross-entropy on float16 logits loses
        # precision (the usual mixed-precision rule).
        self.logits = keras.layers.Dense(self.num_answers, name="logits", dtype="float32")
        self.hidden.build(pooled_shape)
        self.logits.build(tuple(pooled_shape[:-1]) + (self.hidden_dim,))

    def call(self, pooled, training=None):
        return self.logits(self.hidden_dropout(self.hidden(pooled), training=training))

    def compute_output_shape(self, pooled_shape):
        return tuple(pooled_shape[:-1]) + (self.num_answers,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_answers": self.num_answers,
                "hidden_dim": self.hidden_dim,
                "dropout": self.dropout,
            }
        )
        return config
