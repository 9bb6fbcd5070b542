"""`simmim-tf data import-clevr`: CLEVR v1.0 (Johnson et al. 2017) into a
simmim_tf data folder.

Reads the published layout as it is:
    CLEVR_v1.0/questions/CLEVR_<split>_questions.json
        {"questions": [{"image_filename", "question", "answer", "program": [...], ...}]}
    CLEVR_v1.0/images/<split>/CLEVR_<split>_000000.png   (480×320 RGBA)

Images are converted to RGB and resized to a square (`image_size`, 128 by
default as in Santoro et al. 2017). The family of a question is the last
function of its program, grouped as in the CLEVR paper: exist, count,
compare_integer (equal_integer, less_than, greater_than), query_attribute
(query_*), compare_attribute (equal_*). CLEVR's test questions have no
answers and cannot be imported for training or evaluation.
"""

import os

from simmim_tf.data.bad_records import BadRecords
from simmim_tf.data.import_writer import entries, load_json, write_imported
from simmim_tf.data.scene_import import clevr_objects
from simmim_tf.errors import SimMIMInputError


def clevr_family(program):
    """The CLEVR paper's question family from a question's program."""
    last = program[-1]
    function = last.get("function") or last.get("type") if isinstance(last, dict) else None
    if function in ("exist", "count"):
        return function, function
    if function in ("equal_integer", "less_than", "greater_than"):
        return "compare_integer", function
    if isinstance(function, str) and function.startswith("query_"):
        return "query_attribute", function
    if isinstance(function, str) and function.startswith("equal_"):
        return "compare_attribute", function
    return "other", str(function)


def import_clevr(
    questions_json, image_dir, out_dir, split, image_size=128, bad=None, scenes_json=None
):
    """Writes the questions of one CLEVR split as `split`, and with
    `scenes_json` (CLEVR_<split>_scenes.json) its scenes; returns how many
    questions."""
    bad = bad if bad is not None else BadRecords()
    document = load_json(questions_json, "CLEVR questions file")
    records, sources = [], {}
    fields = ("image_filename", "question")
    for where, q in entries(document, "questions", questions_json, bad, fields):
        if "answer" not in q:
            raise SimMIMInputError(
                f"{where}no answer: CLEVR's test questions are unanswered; import train or val"
            )
        program = q.get("program")
        if not isinstance(program, list) or not program:
            bad(f"{where}missing 'program' (CLEVR v1.0 questions have one)")
            continue
        family, subtype = clevr_family(program)
        name = os.path.splitext(q["image_filename"])[0]
        sources.setdefault(name, (os.path.join(image_dir, q["image_filename"]), where))
        records.append(
            {
                "image": f"images/{name}.png",
                "question": q["question"],
                "answer": str(q["answer"]),
                "family": family,
                "subtype": subtype,
                **({"question_id": q["question_index"]} if "question_index" in q else {}),
            }
        )
    objects = clevr_objects(scenes_json, image_size, bad) if scenes_json else None
    scenes = objects and {f"images/{os.path.splitext(f)[0]}.png": o for f, o in objects.items()}
    desc = f"CLEVR {split} images"
    return write_imported(out_dir, "questions.jsonl", split, records, sources, image_size, bad,
                          desc, scenes)  # fmt: skip
