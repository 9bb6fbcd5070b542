"""A retrieval run → the two towers as .tflite files and the edge runtime's
sidecar: `simmim-tf export` for a `SimMIMRetriever` run.

OUT/retrieval_<variant>_image.tflite   images float32 (1, S, S, 3), 0..255
                                       → embedding (1, D), unit length
OUT/retrieval_<variant>_text.tflite    token_ids int32 (1, L) → embedding (1, D)
OUT/retrieval_meta.json                tokenizer, sizes, and the model's id

The image tower embeds a collection once (`simmim_tf.edge.ImageIndex`); the
text tower runs per query. The model id (a digest of the trained weights)
lets an index refuse a text tower of another model.
"""

import hashlib
import os

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from simmim_tf.data.caption_dataset import load_captions
from simmim_tf.edge.edge_retriever import RETRIEVAL_META, tower_file
from simmim_tf.export.signature_conversion import calibration_data, export_signatures
from simmim_tf.models.simmim_retriever import SimMIMRetriever

TOWERS = ("image", "text")


def model_id(run_dir):
    """First 16 hex digits of the SHA-256 of the run's weight files."""
    digest = hashlib.sha256()
    for name in ("model.weights.h5", "task.weights.h5"):
        with open(os.path.join(run_dir, name), "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()[:16]


def export_retriever(
    run_dir,
    out_dir,
    data_dir=None,
    variants=("float32",),
    calibration_size=200,
    formats=("saved_model", "tflite"),
    seed=0,
):
    """Writes both towers for each variant and the sidecar (`tflite` in
    `formats`), and OUT/saved_model with the signatures `image` and `text`
    (`saved_model`; otherwise it is a temporary conversion source). int8
    variants are calibrated on `calibration_size` training images and captions.
    Returns {"files": {name: bytes}, "gpu_delegate_problems": {variant: [...]}}."""
    model = SimMIMRetriever.from_preset(run_dir)
    tokenizer = model.preprocessor.caption_tokenizer()
    size = model.backbone.image_size
    length = tokenizer.sequence_length
    archive = keras.export.ExportArchive()
    # The backbone and the projections, not the attached preprocessor: its
    # lookup table would enter the conversion source (no TFLite builtin).
    for layer in (model.backbone, model.image_projection, model.text_projection):
        archive.track(layer)
    archive.add_endpoint(
        "image",
        lambda images: {"embedding": model.image_tower(images)},
        [tf.TensorSpec((1, size, size, 3), tf.float32, name="images")],
    )
    archive.add_endpoint(
        "text",
        lambda token_ids: {"embedding": model.text_tower(token_ids, ops.not_equal(token_ids, 0))},
        [tf.TensorSpec((1, length), tf.int32, name="token_ids")],
    )
    data_dir = calibration_data(run_dir, data_dir, variants)
    samples = (
        _calibration_samples(data_dir, tokenizer, size, calibration_size, seed) if data_dir else {}
    )
    meta = {
        "model_id": model_id(run_dir),
        "tokenizer": tokenizer.get_config(),
        "image_size": size,
        "embedding_dim": int(model.output["image_embeddings"].shape[-1]),
        "inputs": {"images": "float32 (1, S, S, 3), 0..255", "token_ids": "int32 (1, L)"},
        "outputs": {"embedding": "float32 (1, D), unit length"},
    }
    return export_signatures(
        archive,
        out_dir,
        RETRIEVAL_META,
        meta,
        formats,
        variants,
        signatures=TOWERS,
        samples=samples,
        file_name=tower_file,
        text_part="text",
    )


def _calibration_samples(data_dir, tokenizer, image_size, count, seed):
    """Representative inputs of each tower: training images and captions."""
    train = load_captions(data_dir, "train", image_size=image_size)
    rng = np.random.default_rng(seed)
    images = rng.choice(len(train.images), size=min(count, len(train.images)), replace=False)
    captions = rng.choice(len(train), size=min(count, len(train)), replace=False)
    ids, _ = tokenizer.encode_batch([train.captions[i] for i in captions])
    return {
        "image": [{"images": train.images[i][None].astype(np.float32)} for i in images],
        "text": [{"token_ids": row[None]} for row in ids],
    }
