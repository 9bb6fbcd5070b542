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

import json
import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

from simmim_tf.atomic_files import write_atomically
from simmim_tf.data.caption_dataset import load_captions
from simmim_tf.edge.edge_captioner import CAPTIONER_META, PARTS, part_file
from simmim_tf.export.retrieval_export import model_id
from simmim_tf.export.signature_conversion import convert_signatures
from simmim_tf.export.tflite_conversion import CALIBRATED
from simmim_tf.models.simmim_captioner import SimMIMCaptioner
from simmim_tf.training.run_config import RunConfig


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
    samples = {}
    if set(CALIBRATED) & set(variants):
        if data_dir is None:
            data_dir = RunConfig.load(os.path.join(run_dir, "run_config.json")).data
        samples = _calibration_samples(model, data_dir, calibration_size, seed)
    os.makedirs(out_dir, exist_ok=True)
    # The sidecar vouches for the files written below: removed first and
    # written last, so that a kill or files left from another export are
    # never taken for this model's.
    meta_path = os.path.join(out_dir, CAPTIONER_META)
    if os.path.exists(meta_path):
        os.remove(meta_path)
    report = {"files": {}, "gpu_delegate_problems": {}}
    with tempfile.TemporaryDirectory(dir=out_dir) as scratch:
        saved_model = os.path.join(out_dir if "saved_model" in formats else scratch, "saved_model")
        archive.write_out(saved_model, verbose=False)
        if "tflite" not in formats:
            return report
        report = convert_signatures(
            saved_model, out_dir, variants, PARTS, samples, part_file, text_part="decoder"
        )
    preprocessor = model.preprocessor
    meta = {
        "model_id": model_id(run_dir),
        "vocabulary": preprocessor.tokenizer.get_vocabulary(),
        "image_size": size,
        "max_length": decoder.max_length,
        "start_id": preprocessor.start_token_id,
        "end_id": preprocessor.end_token_id,
        "cache_shape": list(cache_shape),
        "variants": list(variants),
    }
    write_atomically(meta_path, json.dumps(meta, indent=1))
    return report


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
