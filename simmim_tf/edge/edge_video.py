"""Questions about a live stream on the device: NumPy and ai-edge-litert only."""

import os
import re
import time

import numpy as np

from simmim_tf.edge.edge_predictor import check_image, read_sidecar, signature_runner
from simmim_tf.errors import SimMIMInputError
from simmim_tf.preprocessing.question_tokenizer import QuestionTokenizer
from simmim_tf.preprocessing.time_features import TIME_PERIODS, time_features

VIDEO_META = "simmim_video_meta.json"
STEPS = ("frame_step", "answer")


def step_file(variant, step):
    """The .tflite of one step of a video export (`export.video_export` writes it)."""
    return f"video_{step}_{variant}.tflite"


class EdgeVideoAnswerer:
    """Feeds frames one at a time to the exported per-frame step and answers
    questions about what it has seen. It keeps one state of fixed size (the
    streaming memory's slots) and the last frame, whatever the stream's
    length.

    Args:
        export_dir: str. Folder written by `simmim_tf.export.video_export.export_video`.
        variant: str. float32 or float16.
        num_threads: int or None. CPU threads per interpreter.

    Example:
    >>> answerer = EdgeVideoAnswerer("export", "float32")
    >>> for frame in camera_frames:
    ...     answerer.push(frame)
    >>> answerer.answer("is the red object moving?")["answer"]
    'yes'
    """

    def __init__(self, export_dir, variant="float32", num_threads=None):
        meta = read_sidecar(export_dir, VIDEO_META, "video", variant)
        if tuple(meta["time_periods"]) != TIME_PERIODS:
            raise SimMIMInputError(
                f"{export_dir}: exported with time periods {meta['time_periods']}, this "
                f"runtime computes {list(TIME_PERIODS)}; export the model again"
            )
        self.tokenizer = QuestionTokenizer(**meta["tokenizer"])
        self.answers = meta["answers"]
        self.image_size = meta["image_size"]
        self._initial = np.asarray(meta["initial_state"], np.float32)[None]
        self._runners = {
            step: signature_runner(os.path.join(export_dir, step_file(variant, step)), num_threads)
            for step in STEPS
        }
        self.reset()

    def reset(self):
        """Forgets the stream: the next frame is frame 0."""
        self.state = self._initial.copy()
        self.frames_seen = 0
        self._last = None

    def push(self, frame):
        """Reads one uint8 frame (any size; resized as in training) into the state."""
        frame = check_image(frame, self.image_size)[None].astype(np.float32)
        when = time_features(self.frames_seen)[None]
        self.state = self._runners["frame_step"](frame=frame, state=self.state, when=when)["state"]
        self.frames_seen += 1
        self._last = frame

    def answer(self, question, top_k=3):
        """{"answer", "probability", "top_k": [(answer, p), ...], "unknown_words"}."""
        if self._last is None:
            raise ValueError("no frame pushed yet: push(frame) before answer()")
        ids, mask = self.tokenizer.encode(question)
        out = self._runners["answer"](
            frame=self._last,
            state=self.state,
            token_ids=ids[None].astype(np.int32),
            padding_mask=mask[None].astype(np.int32),
        )
        probabilities = out["probabilities"][0]
        best = np.argsort(-probabilities)[:top_k]
        return {
            "answer": self.answers[best[0]],
            "probability": float(probabilities[best[0]]),
            "top_k": [(self.answers[i], float(probabilities[i])) for i in best],
            "unknown_words": self.tokenizer.unknown_words(question),
            "probabilities": probabilities,
        }


def video_export_and_variant(path):
    """(export folder, variant) of a video export's folder (float32) or of
    one of its `video_*_VARIANT.tflite` files."""
    if not os.path.isfile(path):
        return path, "float32"
    named = re.fullmatch(r"video_(?:frame_step|answer)_(\w+)\.tflite", os.path.basename(path))
    if not named:
        raise SimMIMInputError(
            f"{path}: give the video export's folder or one of its video_*.tflite files"
        )
    return os.path.dirname(path) or ".", named.group(1)


def edge_video_answers(answerer, clip_set, timing=None):
    """The answer the exported steps give to each question of a
    `ClipQuestionSet`: each clip streamed once, frame by frame, then its
    questions answered from the state. `timing`, a dict, gets the
    milliseconds of every frame step ("frame_ms") and answer ("answer_ms")."""
    timing = {} if timing is None else timing
    frame_ms, answer_ms = timing.setdefault("frame_ms", []), timing.setdefault("answer_ms", [])
    predicted = [None] * len(clip_set)
    for clip, frames in enumerate(clip_set.frames):
        answerer.reset()
        for frame in frames:
            start = time.perf_counter()
            answerer.push(frame)
            frame_ms.append(1e3 * (time.perf_counter() - start))
        for q in np.flatnonzero(clip_set.clip_index == clip):
            start = time.perf_counter()
            predicted[q] = answerer.answer(clip_set.questions[q], top_k=1)["answer"]
            answer_ms.append(1e3 * (time.perf_counter() - start))
    return predicted
