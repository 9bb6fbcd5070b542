"""Accuracy of a run's Keras model on a data folder (`simmim-tf evaluate --run`)."""

import json
import os

import numpy as np

from simmim_tf.atomic_files import write_atomically
from simmim_tf.console import step
from simmim_tf.data.vqa_dataset import load_split
from simmim_tf.evaluation import accuracy_by_family
from simmim_tf.training.runs import load_run


def model_inputs(model, question_set, count=None):
    """The model's input dict for the first `count` questions (all by
    default) of a `QuestionSet`: uint8 images, token ids, padding mask."""
    count = len(question_set) if count is None else min(count, len(question_set))
    token_ids, mask = model.preprocessor.token_ids(question_set.questions[:count])
    return {
        "images": question_set.images[question_set.image_index[:count]],
        "token_ids": np.asarray(token_ids),
        "padding_mask": np.asarray(mask),
    }


def load_run_and_split(run_dir, data_dir, split="test", count=None):
    """What every export benchmark starts from: (the run's model, the split
    at the model's image size, `model_inputs` of its first `count` questions)."""
    model = load_run(run_dir)
    question_set = load_split(data_dir, split, image_size=model.backbone.image_size)
    return model, question_set, model_inputs(model, question_set, count)


def predict_answers(model, question_set, batch_size=256):
    """The answer the Keras model gives to each question of a `QuestionSet`."""
    logits = model.predict(model_inputs(model, question_set), batch_size=batch_size, verbose=0)
    answers = model.preprocessor.answers
    return [answers[i] for i in np.argmax(logits, axis=-1)]


def evaluate(run_dir, data_dir, split="test", batch_size=256):
    """Accuracy per question family of the run's Keras model; writes RUN/eval.json."""
    model = load_run(run_dir)
    with step(f"reading the {split} split of {data_dir}"):
        question_set = load_split(data_dir, split, image_size=model.backbone.image_size)
    with step(f"answering its {len(question_set):,} questions"):
        predicted = predict_answers(model, question_set, batch_size)
    result = accuracy_by_family(
        predicted,
        question_set.answers,
        question_set.families,
        question_set.human_answers,
        question_set.question_types,
    )
    write_atomically(
        os.path.join(run_dir, "eval.json"),
        json.dumps({"split": split, "data": data_dir, "accuracy": result}, indent=2),
    )
    return result


def evaluate_retrieval(run_dir, data_dir, split="test"):
    """Recall@1/5/10 both ways and RSUM of a retrieval run's Keras model on
    `split`'s captions; writes RUN/eval.json."""
    from simmim_tf.data.caption_dataset import load_captions
    from simmim_tf.models.simmim_retriever import SimMIMRetriever
    from simmim_tf.retrieval_recall import recall_at_k

    model = SimMIMRetriever.from_preset(run_dir)
    with step(f"reading the {split} split of {data_dir}"):
        captions = load_captions(data_dir, split, image_size=model.backbone.image_size)
    with step(f"embedding its {len(captions.images):,} images and {len(captions):,} captions"):
        images, texts = model.embed_images(captions.images), model.embed_texts(captions.captions)
    result = recall_at_k(images, texts, captions.relevance())
    result.update(images=len(captions.images), captions=len(captions))
    write_atomically(
        os.path.join(run_dir, "eval.json"),
        json.dumps({"split": split, "data": data_dir, "recall": result}, indent=2),
    )
    return result


def evaluate_captioning(run_dir, data_dir, split="test", num_beams=None):
    """BLEU-4 and CIDEr-D of a captioning run's generated captions (greedy,
    or beam search with `num_beams`) on `split`'s images, every caption of an
    image a reference; writes RUN/eval.json with a few examples."""
    from simmim_tf.caption_metrics import caption_scores
    from simmim_tf.data.caption_dataset import load_captions
    from simmim_tf.models.simmim_captioner import SimMIMCaptioner

    model = SimMIMCaptioner.from_preset(run_dir)
    with step(f"reading the {split} split of {data_dir}"):
        captions = load_captions(data_dir, split, image_size=model.backbone.image_size)
    with step(f"captioning its {len(captions.images):,} images"):
        generated = model.generate(captions.images, num_beams=num_beams)
    references = [[captions.captions[j] for j in rows] for rows in captions.captions_per_image()]
    result = caption_scores(references, generated)
    result["decoding"] = f"beam search, {num_beams} beams" if num_beams else "greedy"
    examples = [
        {"image": path, "generated": g, "references": r}
        for path, g, r in list(zip(captions.image_paths, generated, references, strict=True))[:5]
    ]
    write_atomically(
        os.path.join(run_dir, "eval.json"),
        json.dumps(
            {"split": split, "data": data_dir, "captions": result, "examples": examples}, indent=2
        ),
    )
    return result


def evaluate_video_qa(run_dir, data_dir, split="test"):
    """Accuracy per question family and type of a video-qa run's Keras
    model on `split`'s clips; writes RUN/eval.json."""
    from simmim_tf.data.clip_dataset import load_clip_split
    from simmim_tf.models.simmim_video_qa import SimMIMVideoQA

    model = SimMIMVideoQA.from_preset(run_dir)
    with step(f"reading the {split} split of {data_dir}"):
        clips = load_clip_split(data_dir, split, image_size=model.backbone.image_size)
    with step(f"answering its {len(clips):,} questions about {len(clips.frames):,} clips"):
        predicted = model.answer_clips(clips.frames, clips.clip_index, clips.questions)
    result = accuracy_by_family(
        predicted, clips.answers, clips.families, question_types=clips.question_types
    )
    write_atomically(
        os.path.join(run_dir, "eval.json"),
        json.dumps({"split": split, "data": data_dir, "accuracy": result}, indent=2),
    )
    return result
