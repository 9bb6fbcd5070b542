"""Reading `captions.jsonl` + `images/` into arrays, for retrieval.

Each record is checked like a question record: a bad one (a missing field,
a caption without words, an unreadable image) goes to a `BadRecords`, which
raises `SimMIMInputError` naming the file and line, or counts it when asked
to skip. Nothing is dropped silently.
"""

import dataclasses
import os

import numpy as np

from simmim_tf.data.bad_records import BadRecords
from simmim_tf.data.record_schema import CAPTION_SCHEMA, record_problems
from simmim_tf.data.vqa_dataset import json_records, read_record_images
from simmim_tf.errors import SimMIMInputError
from simmim_tf.preprocessing.question_tokenizer import split_words


@dataclasses.dataclass
class CaptionSet:
    """The captions of one split, each image stored once.

    images: uint8 (num_images, H, W, 3); image_paths: their paths in the
    data folder; captions: list of str; image_index: int32 (num_captions,)
    pointing into `images`; sources: "captions.jsonl:LINE" of each caption.
    """

    images: np.ndarray
    image_paths: list
    captions: list
    image_index: np.ndarray
    sources: list

    def __len__(self):
        return len(self.captions)

    def relevance(self):
        """bool (num_captions, num_images): caption t describes image i if its
        words equal those of one of image i's captions. CLEVR-2D's short
        captions repeat across images; each image a caption fits counts."""
        text_id = {}
        keys = [text_id.setdefault(" ".join(split_words(c)), len(text_id)) for c in self.captions]
        keys = np.asarray(keys)
        has_text = np.zeros((len(text_id), len(self.images)), bool)
        has_text[keys, self.image_index] = True
        return has_text[keys]

    def captions_per_image(self):
        """list (num_images) of arrays of caption indices."""
        order = np.argsort(self.image_index, kind="stable")
        bounds = np.searchsorted(self.image_index[order], np.arange(len(self.images) + 1))
        return [order[bounds[i] : bounds[i + 1]] for i in range(len(self.images))]


def load_captions(data_dir, split, image_size=None, bad=None):
    """The captions of `split` ("train" or "test") with their decoded images."""
    bad = bad if bad is not None else BadRecords()
    path = os.path.join(data_dir, "captions.jsonl")
    what = "retrieval trains on image captions: CLEVR-2D writes them, or import COCO captions"
    records = []
    for line_no, record in json_records(path, what, bad):
        problems = record_problems(record, CAPTION_SCHEMA)
        if not problems and not split_words(record["caption"]):
            problems = [f"caption {record['caption']!r} has no words"]
        if problems:
            bad(f"{path}:{line_no}: " + "; ".join(problems))
            continue
        if record["split"] == split:
            record["_where"] = f"{path}:{line_no}: "
            records.append(record)
    if not records:
        raise SimMIMInputError(f"{path}: no captions in split {split!r}")
    images, paths, records, image_index = read_record_images(
        data_dir, records, image_size, bad, "caption", split
    )
    return CaptionSet(
        images=images,
        image_paths=paths,
        captions=[r["caption"] for r in records],
        image_index=image_index,
        sources=[r["_where"].rstrip(": ") for r in records],
    )
