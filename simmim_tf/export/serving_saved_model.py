"""The SavedModels of a trained model: numeric signatures (the TFLite
conversion source) and string signatures for TF Serving.

`keras.export.ExportArchive` with batch-1 `tf.TensorSpec`s gives static
shapes, which the GPU delegate needs; `model.export` relaxes the batch to
None even for `batch_size=1` inputs.
"""

import keras
import tensorflow as tf
from keras import ops

from simmim_tf.preprocessing.tf_image_decoder import decode_image
from simmim_tf.preprocessing.tf_question_tokenizer import TFQuestionTokenizer


def serving_function(model):
    """(images float32 0..255, token_ids int32) → probabilities, visual
    attention and, with relational attention, the anchor's.

    Images come in as float32 because the GPU delegate has no uint8→float
    CAST; the padding mask is computed in the graph from id 0.
    """

    def serve(images, token_ids):
        out = model.answer_with_attention(
            {"images": images, "token_ids": token_ids, "padding_mask": ops.not_equal(token_ids, 0)}
        )
        outputs = {
            "probabilities": ops.softmax(out["logits"], axis=-1),
            "visual_attention": out["visual_attention"],  # (batch, heads, tokens, regions)
        }
        if "anchor_attention" in out:  # (batch, [anchors,] regions): what answers
            outputs["anchor_attention"] = out["anchor_attention"]
        return outputs

    return serve


def preprocessing_endpoints(model, serve, tokenizer, answers, top_k=3):
    """`serving_default` (encoded images and question strings in, answers
    out) and `tokenize` (question strings to ids), preprocessing in core TF
    ops only, so that stock TensorFlow Serving runs them.

    Returns (tracked modules, {endpoint name: (function, input signature)}).
    """
    size = model.backbone.image_size
    rows, cols = model.backbone.grid_shape
    top_k = min(top_k, len(answers))
    tf_tokenizer = TFQuestionTokenizer(tokenizer)
    answer_strings = tf.constant(answers.answers)

    def answer(image_bytes, questions):
        images = tf.map_fn(
            lambda data: tf.cast(decode_image(data, size), tf.float32),
            image_bytes,
            fn_output_signature=tf.TensorSpec((size, size, 3), tf.float32),
        )
        token_ids, mask = tf_tokenizer(questions)
        tf.debugging.assert_positive(
            tf.reduce_sum(tf.cast(mask, tf.int32), axis=1),
            message="empty question: every question needs at least one word",
        )
        out = serve(images, token_ids)
        best = tf.math.top_k(out["probabilities"], k=top_k)
        # Where the question looks: mean over heads and real words, as
        # simmim_tf.explanation.visual_map computes it from the same tensor.
        mask = tf.cast(mask, tf.float32)[:, tf.newaxis, :, tf.newaxis]  # (batch, 1, tokens, 1)
        weights = tf.reduce_sum(out["visual_attention"] * mask, axis=2)  # (batch, heads, regions)
        weights = tf.reduce_mean(weights, axis=1)
        weights /= tf.maximum(tf.reduce_sum(weights, axis=-1, keepdims=True), 1e-9)
        return {
            "answers": tf.gather(answer_strings, best.indices),  # (batch, k), best first
            "probabilities": best.values,
            "attention_map": tf.reshape(weights, (-1, rows, cols)),
            "token_ids": token_ids,
        }

    def tokenize(questions):
        token_ids, padding_mask = tf_tokenizer(questions)
        return {"token_ids": token_ids, "padding_mask": padding_mask}

    endpoints = {
        "serving_default": (
            answer,
            [
                tf.TensorSpec((None,), tf.string, name="image_bytes"),
                tf.TensorSpec((None,), tf.string, name="questions"),
            ],
        ),
        "tokenize": (tokenize, [tf.TensorSpec((None,), tf.string, name="questions")]),
    }
    return [tf_tokenizer], endpoints


def write_saved_model(model, tokenizer, answers, path, preprocessing=False):
    """SavedModel with, by default (the conversion source, numeric only):

    serving_default  images float32 (batch, S, S, 3), token_ids int32 (batch, L)
                     -> probabilities, visual_attention
    single           the same with batch 1 (static shapes, for TFLite)

    and with `preprocessing=True` (for TF Serving; TFLite has no builtin
    hash-table op, so the conversion source leaves the string ones out):

    serving_default  image_bytes string (batch,) PNG/JPEG, questions string (batch,)
                     -> answers (batch, 3) best first, probabilities (batch, 3),
                        attention_map (batch, rows, cols), token_ids
    tensors          the numeric serving_default above (preprocessed tensors)
    tokenize         questions string (batch,) -> token_ids, padding_mask
    """
    size = model.backbone.image_size
    archive = keras.export.ExportArchive()
    track_network(archive, model)
    serve = serving_function(model)
    numeric = "tensors" if preprocessing else "serving_default"
    for name, batch in ((numeric, None), ("single", 1)):
        archive.add_endpoint(
            name,
            serve,
            input_signature=[
                tf.TensorSpec((batch, size, size, 3), tf.float32, name="images"),
                tf.TensorSpec((batch, tokenizer.sequence_length), tf.int32, name="token_ids"),
            ],
        )
    if preprocessing:
        modules, endpoints = preprocessing_endpoints(model, serve, tokenizer, answers)
        # The lookup table is a resource of the SavedModel: tracked, it is saved.
        archive._tf_trackable.preprocessing = modules
        for name, (function, signature) in endpoints.items():
            archive.add_endpoint(name, function, input_signature=signature)
    archive.write_out(path, verbose=False)


def track_network(archive, model):
    """Tracks the backbone and the answer head, not the attached
    preprocessor: its lookup tables would enter the conversion source, and
    TFLite has no builtin hash-table op."""
    archive.track(model.backbone)
    archive.track(model.answer_head)
