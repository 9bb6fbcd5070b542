"""What each exported variant of a video-qa run gives against the Keras
model: size, accuracy per family, agreement with Keras, the state the
device keeps, and the milliseconds of one frame step and of one answer on
one thread (`simmim-tf export --report` of a video-qa run)."""

import json
import os

import numpy as np

from simmim_tf.atomic_files import write_atomically
from simmim_tf.data.clip_dataset import load_clip_split
from simmim_tf.edge.edge_video import STEPS, EdgeVideoAnswerer, edge_video_answers, step_file
from simmim_tf.evaluation import accuracy_by_family
from simmim_tf.models.simmim_video_qa import SimMIMVideoQA


def video_report(export_dir, run_dir, data_dir, variants, split="test"):
    """Per variant, on `split`'s clips streamed frame by frame: file sizes,
    accuracy per family, the share of answers equal to Keras's, and the
    median milliseconds of a frame step and of an answer (one thread).
    Writes OUT/video_report.json and .md; returns the dict."""
    model = SimMIMVideoQA.from_preset(run_dir)
    clips = load_clip_split(data_dir, split, image_size=model.backbone.image_size)

    def accuracy(answers):
        return accuracy_by_family(
            answers, clips.answers, clips.families, question_types=clips.question_types
        )

    keras_answers = model.answer_clips(clips.frames, clips.clip_index, clips.questions)
    report = {
        "split": split,
        "clips": len(clips.frames),
        "frames_per_clip": int(clips.frames.shape[1]),
        "questions": len(clips),
        "keras": accuracy(keras_answers),
        "variants": {},
    }
    for variant in variants:
        answerer = EdgeVideoAnswerer(export_dir, variant, num_threads=1)
        timing = {}
        answers = edge_video_answers(answerer, clips, timing)
        report["variants"][variant] = {
            "bytes": {
                s: os.path.getsize(os.path.join(export_dir, step_file(variant, s))) for s in STEPS
            },
            "accuracy": accuracy(answers),
            "same_as_keras": float(100.0 * np.mean(np.array(answers) == np.array(keras_answers))),
            "state_bytes": int(answerer.state.nbytes),
            "state_shape": list(answerer.state.shape),
            "frame_ms": float(np.median(timing["frame_ms"])),
            "answer_ms": float(np.median(timing["answer_ms"])),
        }
    write_atomically(os.path.join(export_dir, "video_report.json"), json.dumps(report, indent=2))
    write_atomically(os.path.join(export_dir, "video_report.md"), format_report(report))
    return report


def format_report(report):
    """A markdown table: one row for Keras, one per variant, every family."""
    families = [f for f in report["keras"] if f not in ("overall", "by_question_type")]
    header = ["model", "MB (frame step + answer)", *families, "overall", "same as Keras"]
    header += ["state (floats, KB)", "ms per frame", "ms per answer"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]

    def percent(accuracy):
        return [f"{100 * accuracy[f]['accuracy']:.1f}" for f in (*families, "overall")]

    lines.append("| Keras | | " + " | ".join(percent(report["keras"])) + " |" + " |" * 4)
    for variant, v in report["variants"].items():
        cells = [variant, f"{sum(v['bytes'].values()) / 1e6:.3f}", *percent(v["accuracy"])]
        cells += [
            f"{v['same_as_keras']:.1f}%",
            f"{np.prod(v['state_shape'])} ({v['state_bytes'] / 1e3:.1f})",
        ]
        cells += [f"{v['frame_ms']:.3f}", f"{v['answer_ms']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    note = (
        f"\n{report['questions']} {report['split']} questions about {report['clips']} clips of "
        f"{report['frames_per_clip']} frames; ms: median, one thread.\n"
    )
    return "\n".join(lines) + "\n" + note
