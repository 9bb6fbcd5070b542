"""Captioning on the device: the exported image encoder, run once per
picture, and the one-step decoder, looped over in Python. NumPy and
ai-edge-litert only.

Export folder (`simmim-tf export` of a captioning run):
    captioner_<variant>_encoder.tflite  images float32 (1, S, S, 3), 0..255 → regions
    captioner_<variant>_decoder.tflite  (token_ids, positions, regions, cache) →
                                        (next-token logits, cache)
    captioner_meta.json                 vocabulary, sizes, special ids, variants
"""

import os
import time

import numpy as np

from simmim_tf.edge.edge_predictor import check_image, read_sidecar, signature_runner
from simmim_tf.errors import SimMIMInputError
from simmim_tf.preprocessing.question_tokenizer import ids_to_caption

CAPTIONER_META = "captioner_meta.json"
PARTS = ("encoder", "decoder")


def part_file(variant, part):
    """File name of one part of one variant: captioner_<variant>_<part>.tflite."""
    return f"captioner_{variant}_{part}.tflite"


class EdgeCaptioner:
    """Greedy captions from one exported variant.

    Each word is one run of the decoder on the previous word, its position,
    the picture's regions and the key/value cache it returned last time.

    Args:
        export_dir: str. Folder written by `simmim-tf export` of a captioning run.
        variant: str. float32, float16, dynamic or int8.
        num_threads: int or None. CPU threads per interpreter.

    Example:
    >>> captioner = EdgeCaptioner("export", "float32")
    >>> captioner.caption(image)
    'a large red circle to the left of a small blue square'
    """

    def __init__(self, export_dir, variant="float32", num_threads=None):
        meta = read_sidecar(export_dir, CAPTIONER_META, "captioning", variant)
        self.variant = variant
        self.image_size = meta["image_size"]
        self.max_length = meta["max_length"]
        self.vocabulary = meta["vocabulary"]
        self.start_id, self.end_id = meta["start_id"], meta["end_id"]
        self.cache_shape = tuple(meta["cache_shape"])
        paths = {p: os.path.join(export_dir, part_file(variant, p)) for p in PARTS}
        self._encoder = signature_runner(paths["encoder"], num_threads)
        self._decoder = signature_runner(paths["decoder"], num_threads)
        self.last_timing = None

    def caption_ids(self, image, max_length=None):
        """One image (uint8, any size, 1 to 4 channels) → the generated ids,
        `[END]` included when reached. Sets `last_timing`: milliseconds of
        the encoder and of each decoder step."""
        max_length = self._check_max_length(max_length)
        pixels = check_image(image, self.image_size)[None].astype(np.float32)
        start = time.perf_counter()
        regions = self._encoder(images=pixels)["regions"]
        encoded = time.perf_counter()
        cache = np.zeros(self.cache_shape, np.float32)
        token, ids, steps = self.start_id, [], []
        for position in range(max_length):
            step_start = time.perf_counter()
            out = self._decoder(
                token_ids=np.array([[token]], np.int32),
                positions=np.array([[position]], np.int32),
                regions=regions,
                cache=cache,
            )
            steps.append(1000 * (time.perf_counter() - step_start))
            cache = out["cache"]
            token = int(np.argmax(out["logits"][0]))
            ids.append(token)
            if token == self.end_id:
                break
        self.last_timing = {"encoder_ms": 1000 * (encoded - start), "step_ms": steps}
        return ids

    def caption(self, image, max_length=None):
        """One image → its greedy caption (str)."""
        return ids_to_caption(self.caption_ids(image, max_length), self.vocabulary)

    def _check_max_length(self, max_length):
        if max_length is None:
            return self.max_length
        if not 1 <= int(max_length) <= self.max_length:
            raise SimMIMInputError(
                f"max_length must be 1 to {self.max_length} (the model's caption length), "
                f"got {max_length}"
            )
        return int(max_length)
