"""`simmim-tf data import-vqav2`: VQAv2 (Goyal et al. 2017) into a simmim_tf
data folder.

Reads the published files as they are:
    v2_OpenEnded_mscoco_<subtype>_questions.json
        {"data_subtype": "train2014", "questions": [{"image_id", "question", "question_id"}]}
    v2_mscoco_<subtype>_annotations.json
        {"annotations": [{"question_id", "image_id", "question_type", "answer_type",
                          "multiple_choice_answer", "answers": [{"answer", ...} x 10]}]}
    COCO images: <image_dir>/COCO_<subtype>_<image_id:012d>.jpg

Each question becomes a record with `answer` = multiple_choice_answer (the
training target), `answers` = the ten human answers (for VQA accuracy),
`family` = answer type (yes_no, number, other) and `subtype` = question type.
"""

import os

from simmim_tf.data.bad_records import BadRecords
from simmim_tf.data.import_writer import entries, load_json, write_imported
from simmim_tf.data.scene_import import coco_objects

ANSWER_TYPES = {"yes/no": "yes_no", "number": "number", "other": "other"}


def import_vqav2(
    questions_json,
    annotations_json,
    image_dir,
    out_dir,
    split,
    image_size=224,
    bad=None,
    instances_json=None,
):
    """Writes the questions of one VQAv2 subset as `split`, and with
    `instances_json` (COCO's instances_<subtype>.json) its images' objects
    as scenes; returns how many questions."""
    bad = bad if bad is not None else BadRecords()
    questions = load_json(questions_json, "VQAv2 questions file")
    annotations = load_json(annotations_json, "VQAv2 annotations file")
    subtype = questions.get("data_subtype") if isinstance(questions, dict) else None
    if not isinstance(subtype, str):
        bad(f"{questions_json}: missing 'data_subtype' (e.g. train2014); COCO file names need it")
        subtype = "unknown"
    by_id = _annotations_by_question(annotations, annotations_json, bad)
    records, sources = [], {}
    for where, q in entries(
        questions, "questions", questions_json, bad, ("image_id", "question", "question_id")
    ):
        if q["question_id"] not in by_id:
            bad(f"{where}question {q['question_id']} has no annotation in {annotations_json}")
            continue
        if not isinstance(q["image_id"], int):
            bad(f"{where}'image_id' must be an integer, got {q['image_id']!r}")
            continue
        a, humans = by_id[q["question_id"]]
        name = f"COCO_{subtype}_{q['image_id']:012d}"
        sources.setdefault(name, (os.path.join(image_dir, name + ".jpg"), where))
        records.append(
            {
                "image": f"images/{name}.png",
                "question": q["question"],
                "answer": a["multiple_choice_answer"],
                "answers": humans,
                "family": ANSWER_TYPES.get(a["answer_type"], a["answer_type"]),
                "subtype": a["question_type"],
                "question_id": q["question_id"],
            }
        )
    objects = coco_objects(instances_json, image_size, bad) if instances_json else None
    scenes = objects and {f"images/COCO_{subtype}_{i:012d}.png": o for i, (_, o) in objects.items()}
    desc = f"VQAv2 {split} images"
    return write_imported(out_dir, "questions.jsonl", split, records, sources, image_size, bad,
                          desc, scenes)  # fmt: skip


def _annotations_by_question(annotations, annotations_json, bad):
    """{question id: (annotation, the human answers)} of the valid annotations."""
    by_id = {}
    fields = ("question_id", "answer_type", "question_type", "multiple_choice_answer", "answers")
    for where, a in entries(annotations, "annotations", annotations_json, bad, fields):
        humans = [h.get("answer") for h in a["answers"] if isinstance(h, dict)]
        if not humans or not all(isinstance(h, str) for h in humans):
            bad(f"{where}'answers' must be a list of {{'answer': string}}")
            continue
        by_id[a["question_id"]] = (a, humans)
    return by_id
