"""Reading a clip folder (`questions.jsonl` naming clips + `clips/`) into arrays.

A clip is a folder of frames (PNG or JPEG, in file-name order), named by
each record's "clip" field relative to the data folder. Every record is
checked against `CLIP_QUESTION_SCHEMA`, every frame is decoded, and every
clip of a split must have as many frames, of one size, as the first: a bad
record or clip goes to a `BadRecords` (an error naming file and line, or
counted and left out when skipping). `simmim_tf.data.moving_shapes` writes
such folders.
"""

import collections
import dataclasses
import os

import numpy as np
from PIL import Image, ImageSequence, UnidentifiedImageError

from simmim_tf.data.bad_records import BadRecords
from simmim_tf.data.record_schema import STR
from simmim_tf.data.vqa_dataset import read_questions
from simmim_tf.errors import SimMIMInputError
from simmim_tf.preprocessing.image_conversion import convert_image
from simmim_tf.preprocessing.image_loading import load_image

CLIP_QUESTION_SCHEMA = {
    "clip": (STR, True),  # folder of frames relative to the data folder, e.g. "clips/000001"
    "question": (STR, True),
    "answer": (STR, True),
    "family": (STR, True),  # descriptive, motion, events, order
    "split": (STR, True),
    "subtype": (STR, False),
}
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm")


@dataclasses.dataclass
class ClipQuestionSet:
    """The questions of one split, with each clip's frames stored once.

    frames: uint8 (clips, frames, H, W, 3); clip_index: int32 (questions,)
    into `frames`; questions, answers, families, question_types ("subtype",
    or the family where there is none), sources ("questions.jsonl:LINE").
    """

    frames: np.ndarray
    clip_paths: list
    clip_index: np.ndarray
    questions: list
    answers: list
    families: list
    question_types: list
    sources: list

    def __len__(self):
        return len(self.questions)

    # What `image_grouped_batches` reads: a "picture" here is a whole clip,
    # so the questions of one clip share its frames in a batch.
    @property
    def images(self):
        return self.frames

    @property
    def image_index(self):
        return self.clip_index


def frame_files(clip_dir):
    """The frame files of a clip folder, in name order."""
    names = sorted(n for n in os.listdir(clip_dir) if n.lower().endswith(FRAME_SUFFIXES))
    return [os.path.join(clip_dir, n) for n in names]


def load_clip(clip_dir, image_size=None):
    """uint8 (frames, H, W, 3) of one clip folder, animated GIF or video
    file (`VIDEO_SUFFIXES`); a one-line error naming the folder or the frame
    that cannot be read."""
    if clip_dir.lower().endswith(".gif") and os.path.isfile(clip_dir):
        return load_gif(clip_dir, image_size)
    if clip_dir.lower().endswith(VIDEO_SUFFIXES) and os.path.isfile(clip_dir):
        return load_video(clip_dir, image_size)
    if not os.path.isdir(clip_dir):
        raise SimMIMInputError(f"{clip_dir}: clip folder not found")
    files = frame_files(clip_dir)
    if not files:
        raise SimMIMInputError(f"{clip_dir}: no frames (PNG or JPEG files)")
    frames = [load_image(f, image_size) for f in files]
    if len({f.shape for f in frames}) > 1:
        odd = next(f for f, x in zip(files, frames, strict=True) if x.shape != frames[0].shape)
        raise SimMIMInputError(f"{odd}: frame size differs from {files[0]}'s")
    return np.stack(frames)


def load_gif(path, image_size=None):
    """uint8 (frames, H, W, 3): every frame of an animated GIF, as RGB."""
    try:
        with Image.open(path) as gif:
            frames = [np.asarray(f.convert("RGB"), np.uint8) for f in ImageSequence.Iterator(gif)]
    except (UnidentifiedImageError, OSError) as e:
        raise SimMIMInputError(f"{path}: not a readable GIF ({e})") from None
    return np.stack([convert_image(f, image_size) for f in frames])


def load_video(path, image_size=None):
    """uint8 (frames, H, W, 3): every frame of a video file (.mp4 and the
    other `VIDEO_SUFFIXES`), decoded with PyAV (FFmpeg), as RGB."""
    import av  # PyAV: its wheels carry FFmpeg's decoders

    try:
        with av.open(path) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    except (av.error.FFmpegError, ValueError, IndexError) as e:
        raise SimMIMInputError(f"{path}: not a readable video ({e})") from None
    if not frames:
        raise SimMIMInputError(f"{path}: the video has no frames")
    return np.stack([convert_image(f, image_size) for f in frames])


def _bad_clip(bad, first_record, records, problem):
    uses = sum(q["clip"] == first_record["clip"] for q in records)
    bad(f"{first_record['_where']}{problem} ({uses} question(s) use it)", left_out=uses)


def load_clip_split(data_dir, split, image_size=None, bad=None):
    """The `ClipQuestionSet` of `split`; each clip read once."""
    bad = bad if bad is not None else BadRecords()
    questions = read_questions(data_dir, bad, CLIP_QUESTION_SCHEMA)
    records = [r for r in questions if r["split"] == split]
    if not records:
        raise SimMIMInputError(f"{data_dir}: no clip questions in split {split!r}")
    first_use = {}
    for r in records:
        first_use.setdefault(r["clip"], r)
    loaded = {}
    for clip, r in sorted(first_use.items()):
        try:
            loaded[clip] = load_clip(os.path.join(data_dir, clip), image_size)
        except SimMIMInputError as e:
            _bad_clip(bad, r, records, str(e))
    # Clips must agree with the commonest shape (frames, height, width), not
    # with whichever clip sorts first: one odd clip is the one reported.
    shapes = collections.Counter(frames.shape for frames in loaded.values())
    usual = shapes.most_common(1)[0][0] if shapes else None
    clips, paths = [], []
    for clip, frames in loaded.items():
        if frames.shape != usual:
            _bad_clip(
                bad,
                first_use[clip],
                records,
                f"clip {clip!r} is {frames.shape[0]} frames of {frames.shape[1:3]}, the "
                f"split's other clips {usual[0]} of {usual[1:3]}",
            )
            continue
        clips.append(frames)
        paths.append(clip)
    readable = set(paths)
    records = [r for r in records if r["clip"] in readable]
    if not records:
        raise SimMIMInputError(f"{data_dir}: no readable clips in split {split!r}")
    position = {p: i for i, p in enumerate(paths)}
    return ClipQuestionSet(
        frames=np.stack(clips),
        clip_paths=paths,
        clip_index=np.array([position[r["clip"]] for r in records], np.int32),
        questions=[r["question"] for r in records],
        answers=[r["answer"] for r in records],
        families=[r["family"] for r in records],
        question_types=[r.get("subtype") or r["family"] for r in records],
        sources=[r["_where"].rstrip(": ") for r in records],
    )


def split_off_clips(clip_set, fraction, seed=1000):
    """(kept, held out) `ClipQuestionSet`s: a `fraction` of the clips, with
    all their questions, held out (a validation share of the training
    clips); the same clips for the same `seed`."""
    if not 0 <= fraction < 1:
        raise SimMIMInputError(f"validation_fraction must be in [0, 1); got {fraction}")
    clips = len(clip_set.frames)
    chosen = np.random.default_rng(seed).permutation(clips)[: int(round(fraction * clips))]
    is_held = np.zeros(clips, bool)
    is_held[chosen] = True
    parts = []
    for keep_clip in (~is_held, is_held):
        keep = keep_clip[clip_set.clip_index]
        index = np.cumsum(keep_clip) - 1
        pick = lambda xs, k=keep: [x for x, m in zip(xs, k, strict=True) if m]  # noqa: E731
        parts.append(
            ClipQuestionSet(
                frames=clip_set.frames[keep_clip],
                clip_paths=pick(clip_set.clip_paths, keep_clip),
                clip_index=index[clip_set.clip_index[keep]].astype(np.int32),
                questions=pick(clip_set.questions),
                answers=pick(clip_set.answers),
                families=pick(clip_set.families),
                question_types=pick(clip_set.question_types),
                sources=pick(clip_set.sources),
            )
        )
    return tuple(parts)
