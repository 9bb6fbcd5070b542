"""A captioning run → the image encoder and the one-step decoder as .tflite
files and the edge runtime's sidecar: `simmim-tf export` for a
`SimMIMCaptioner` run.

OUT/captioner_<variant>_encoder.tflite  images float32 (1, S, S, 3), 0..255
                                        → regions float32 (1, R, D)
OUT/captioner_<variant>_decoder.tflite  token_ids int32 (1, 1), positions int32
                                        (1, 1), regions, cache float32 (1, C, T, K)
                                        → logits float32 (1, V), cache
OUT/captioner_meta.json                 vocabulary, sizes, special ids, variants

The decoder has no loop: the edge runtime (`simmim_tf.edge.EdgeCaptioner`)
runs it once per word, as the GPU delegate requires (it runs no WHILE).
"""

import keras
import numpy as np
import tensorflow as tf

from simmim_tf.data.caption_dataset import load_captions
from simmim_tf.edge.edge_captioner import CAPTIONER_META, PARTS, part_file
from simmim_tf.export.retrieval_export import model_id
from simmim_tf.export.signature_conversion import calibration_data, export_signatures
from simmim_tf.models.simmim_captioner import SimMIMCaptioner


def export_captioner(
    run_dir,
    out_dir,
    data_dir=None,
    variants=("float32",),
    calibration_size=200,
    formats=("saved_model", "tflite"),
    seed=0,
):
    """Writes both parts for each variant and the sidecar (`tflite` in
    `formats`), and OUT/saved_model with the signatures `encoder` and
    `decoder` (`saved_model`; otherwise it is a temporary conversion
    source). int8 variants are calibrated on `calibration_size` training
    images and on the decoder steps of their greedy captions.
    Returns {"files": {name: bytes}, "gpu_delegate_problems": {variant: [...]}}."""
    model = SimMIMCaptioner.from_preset(run_dir)
    decoder = model.decoder
    size = model.backbone.image_size
    regions_shape = (1,) + tuple(
        model.backbone.encode_image(np.zeros((1, size, size, 3))).shape[1:]
    )
    cache_shape = decoder.cache_shape(1)
    archive = _archive(model, regions_shape, cache_shape)
    data_dir = calibration_data(run_dir, data_dir, variants)
    samples = _calibration_samples(model, data_dir, calibration_size, seed) if data_dir else {}
    preprocessor = model.preprocessor
    meta = {
        "model_id": model_id(run_dir),
        "vocabulary": preprocessor.tokenizer.get_vocabulary(),
        "image_size": size,
        "max_length": decoder.max_length,
        "start_id": preprocessor.start_token_id,
        "end_id": preprocessor.end_token_id,
        "cache_shape": list(cache_shape),
    }
    return export_signatures(
        archive,
        out_dir,
        CAPTIONER_META,
        meta,
        formats,
        variants,
        signatures=PARTS,
        samples=samples,
        file_name=part_file,
        text_part="decoder",
    )


def _archive(model, regions_shape, cache_shape):
    """The captioner's two signatures: `encoder` (images → regions) and
    `decoder` (one step against the cache)."""
    decoder = model.decoder
    size = model.backbone.image_size
    archive = keras.export.ExportArchive()
    # The backbone and the decoder, not the attached preprocessor: its
    # lookup table would enter the conversion source (no TFLite builtin).
    archive.track(model.backbone)
    archive.track(decoder)
    archive.add_endpoint(
        "encoder",
        lambda images: {"regions": model.backbone.encode_image(images)},
        [tf.TensorSpec((1, size, size, 3), tf.float32, name="images")],
    )

    def step(token_ids, positions, regions, cache):
        logits, cache = decoder.step(token_ids, positions, regions, cache)
        return {"logits": logits, "cache": cache}

    archive.add_endpoint(
        "decoder",
        step,
        [
            tf.TensorSpec((1, 1), tf.int32, name="token_ids"),
            tf.TensorSpec((1, 1), tf.int32, name="positions"),
            tf.TensorSpec(regions_shape, tf.float32, name="regions"),
            tf.TensorSpec(cache_shape, tf.float32, name="cache"),
        ],
    )
    return archive


def _calibration_samples(model, data_dir, count, seed):
    """Representative inputs of each part: training images, and the decoder
    steps of Keras's greedy captions of some of them (states a real
    caption passes through)."""
    train = load_captions(data_dir, "train", image_size=model.backbone.image_size)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(train.images), size=min(count, len(train.images)), replace=False)
    images = train.images[chosen].astype(np.float32)
    encoder = [{"images": image[None]} for image in images]
    decoder_samples = []
    few = images[: max(1, count // 10)]
    regions = np.asarray(model.backbone.encode_image(few))
    ids = model.generate_ids(few)
    cache = model.decoder.empty_cache(len(few))
    for position in range(ids.shape[1] - 1):
        tokens = ids[:, position : position + 1]
        positions = np.full((len(few), 1), position, np.int32)
        for row in range(len(few)):
            if position == 0 or ids[row, position] != 0:  # still inside the caption
                decoder_samples.append(
                    {
                        "token_ids": tokens[row : row + 1],
                        "positions": positions[row : row + 1],
                        "regions": regions[row : row + 1],
                        "cache": np.asarray(cache[row : row + 1]),
                    }
                )
        _, cache = model.decoder.step(tokens, positions, regions, cache)
    order = rng.permutation(len(decoder_samples))[:count]
    return {"encoder": encoder, "decoder": [decoder_samples[i] for i in order]}
