"""Two .tflite files for many questions about one picture: the image
encoder, and the answer model that runs per question."""

import os
import tempfile

import keras
import tensorflow as tf
from keras import ops

from simmim_tf.atomic_files import write_atomically
from simmim_tf.export.serving_saved_model import track_network
from simmim_tf.export.tflite_conversion import convert

TWO_STAGE_VARIANTS = ("float32", "float16", "dynamic")


def export_two_stage(model, out_dir, sequence_length, variants=("float32",)):
    """Two .tflite files per variant for many questions about one picture:

    model_<variant>_encode_image.tflite  images float32 (1, S, S, 3) -> regions
    model_<variant>_answer.tflite        regions, token_ids (1, L)
                                         -> probabilities, visual_attention

    The image encoder runs once per picture; each further question runs the
    answer model alone (`simmim_tf.edge.TwoStagePredictor`). Variants without
    calibration only: a calibrated answer model would need regions as its
    representative data. Returns {file name: bytes}.
    """
    unknown = sorted(set(variants) - set(TWO_STAGE_VARIANTS))
    if unknown:
        raise ValueError(f"two-stage variants are {TWO_STAGE_VARIANTS}; got {unknown}")
    size = model.backbone.image_size
    rows, cols = model.backbone.grid_shape
    regions_spec = tf.TensorSpec((1, rows * cols, model.backbone.hidden_dim), tf.float32)

    def encode_image(images):
        return {"regions": model.backbone.encode_image(images)}

    def answer(regions, token_ids):
        out = model.answer_from_regions(regions, token_ids, ops.not_equal(token_ids, 0))
        return {
            "probabilities": ops.softmax(out["logits"], axis=-1),
            "visual_attention": out["visual_attention"],
        }

    archive = keras.export.ExportArchive()
    track_network(archive, model)
    archive.add_endpoint(
        "encode_image", encode_image, [tf.TensorSpec((1, size, size, 3), tf.float32, name="images")]
    )
    archive.add_endpoint(
        "answer",
        answer,
        [
            tf.TensorSpec(regions_spec.shape, tf.float32, name="regions"),
            tf.TensorSpec((1, sequence_length), tf.int32, name="token_ids"),
        ],
    )
    sizes = {}
    with tempfile.TemporaryDirectory(dir=out_dir) as saved_model:
        archive.write_out(saved_model, verbose=False)
        for variant in variants:
            for signature in ("encode_image", "answer"):
                flatbuffer = convert(saved_model, variant, signature=signature)
                name = f"model_{variant}_{signature}.tflite"
                write_atomically(os.path.join(out_dir, name), flatbuffer)
                sizes[name] = len(flatbuffer)
    return sizes
