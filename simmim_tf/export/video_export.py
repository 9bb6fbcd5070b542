"""The streaming video model for the device: a per-frame step and an answer
step, each a .tflite with static shapes, and a sidecar.

    frame_step  (frame, state, when) -> state: one frame read into the
                memory; `when` is the frame's `time_features`
    answer      (frame, state, token_ids, padding_mask) -> probabilities:
                the question about the last frame and the memory

The device keeps only the state, (1, slots, dim) floats, however long the
stream (`simmim_tf.edge.edge_video.EdgeVideoAnswerer` runs them).
"""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from simmim_tf.edge.edge_video import STEPS, VIDEO_META, step_file
from simmim_tf.errors import SimMIMInputError
from simmim_tf.export.signature_conversion import export_signatures
from simmim_tf.export.tflite_conversion import CALIBRATED, VARIANTS
from simmim_tf.preprocessing.time_features import TIME_PERIODS, time_features

VIDEO_VARIANTS = VARIANTS


def export_video(
    model, tokenizer, answers, out_dir, variants=("float32",), formats=("tflite",),
    calibration=None, calibration_size=200, seed=0,
):  # fmt: skip
    """Writes both steps of `model` (a `SimMIMVideoQA`) in each variant and
    the sidecar (vocabulary, answers, sizes and the memory's initial state).

    tokenizer: the `QuestionTokenizer` it was trained with; answers: its
    answer strings, in class order; calibration: a `ClipQuestionSet` (the
    training clips) for the calibrated variants (int8, int8_mixed), whose
    clips are streamed through the Keras model for the states a real stream
    passes through (`calibration_size` samples of each step).
    Returns {"files": {name: bytes}, "gpu_delegate_problems": {variant: [...]}}.
    """
    unknown = [v for v in variants if v not in VIDEO_VARIANTS]
    if unknown:
        raise SimMIMInputError(
            f"video export variants {unknown}: the streaming steps export as "
            f"{', '.join(VIDEO_VARIANTS)}"
        )
    calibrated = sorted(set(variants) & set(CALIBRATED))
    if calibrated and calibration is None:
        raise SimMIMInputError(
            f"{', '.join(calibrated)}: calibration needs clips (calibration=, or --data)"
        )
    backbone = model.backbone
    size, length = backbone.image_size, tokenizer.sequence_length
    initial = np.asarray(model.memory.initial_state(1), np.float32)
    meta = {
        "tokenizer": tokenizer.get_config(),
        "answers": list(answers),
        "image_size": size,
        "state_shape": list(initial.shape),
        "initial_state": initial[0].tolist(),
        "time_periods": list(TIME_PERIODS),
    }
    return export_signatures(
        _archive(model, size, length, initial.shape),
        out_dir,
        VIDEO_META,
        meta,
        formats,
        variants,
        signatures=STEPS,
        samples=(
            _calibration_samples(model, tokenizer, calibration, calibration_size, seed)
            if calibrated
            else {}
        ),
        file_name=step_file,
        text_part="answer",
    )


def _archive(model, size, length, state_shape):
    archive = keras.export.ExportArchive()
    # The layers the steps call (not the task: its preprocessor's lookup
    # tables are no TFLite ops).
    for layer in (
        model.backbone,
        model.memory,
        model.memory_read,
        model.final_norm,
        model.answer_head,
    ):
        archive.track(layer)
    frame = tf.TensorSpec((1, size, size, 3), tf.float32, name="frame")
    state = tf.TensorSpec(state_shape, tf.float32, name="state")

    def frame_step(frame, state, when):
        regions = model.backbone.encode_image(frame)
        new_state, _ = model.memory.step(state, regions, when)
        return {"state": new_state}

    def answer(frame, state, token_ids, padding_mask):
        regions = model.backbone.encode_image(frame)
        logits = model.answer_from_memory(regions, state, token_ids, padding_mask)
        return {"probabilities": ops.softmax(ops.cast(logits, "float32"), axis=-1)}

    when = tf.TensorSpec((1, 2 * len(TIME_PERIODS)), tf.float32, name="when")
    archive.add_endpoint("frame_step", frame_step, [frame, state, when])
    tokens = [
        tf.TensorSpec((1, length), tf.int32, name="token_ids"),
        tf.TensorSpec((1, length), tf.int32, name="padding_mask"),
    ]
    archive.add_endpoint("answer", answer, [frame, state, *tokens])
    return archive


def _calibration_samples(model, tokenizer, clips, count, seed):
    """Representative inputs of both steps: frames of training clips with
    the states the Keras model reaches streaming them (every frame of a
    clip), and questions with their clip's last frame and final state."""
    rng = np.random.default_rng(seed)
    length = clips.frames.shape[1]
    chosen = rng.choice(
        len(clips.frames), size=min(len(clips.frames), -(-count // length)), replace=False
    )
    frame_samples, answer_samples = [], []
    for clip in chosen:
        frames = clips.frames[clip].astype(np.float32)
        state = np.asarray(model.memory.initial_state(1))
        for t, frame in enumerate(frames):
            when = time_features(t)[None]
            frame_samples.append({"frame": frame[None], "state": state, "when": when})
            regions = model.backbone.encode_image(frame[None])
            state = np.asarray(model.memory.step(state, regions, when)[0])
        for q in np.flatnonzero(clips.clip_index == clip)[:length]:
            ids, mask = tokenizer.encode(clips.questions[q])
            answer_samples.append(
                {
                    "frame": frames[-1][None],
                    "state": state,
                    "token_ids": ids[None].astype(np.int32),
                    "padding_mask": mask[None].astype(np.int32),
                }
            )
    return {"frame_step": frame_samples[:count], "answer": answer_samples[:count]}
