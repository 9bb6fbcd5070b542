"""`simmim-tf data validate`: every problem of a data folder, each with its
file and line, instead of the first one that training would stop at."""

import collections
import os

from simmim_tf.data.bad_records import BadRecords
from simmim_tf.data.vqa_dataset import read_captions, read_questions, read_scenes
from simmim_tf.errors import SimMIMInputError
from simmim_tf.preprocessing.image_loading import load_image


def validate_folder(data_dir, answer_vocabulary=None, check_images=True):
    """Checks questions.jsonl, scenes.jsonl and captions.jsonl (when present)
    and the images they name.

    Args:
        data_dir: str. The data folder.
        answer_vocabulary: AnswerVocabulary or None. When given (a trained
            run's answers.json), an answer outside it is a problem.
        check_images: bool. Decode every image once (slower, finds corrupt files).

    Returns:
        (problems, counts): a list of "file:line: what is wrong" messages and
        a dict of what was read (questions per split, images, scenes, captions).
    """
    bad = BadRecords(skip=True)
    counts = collections.Counter()
    try:
        questions = read_questions(data_dir, bad)
    except SimMIMInputError as e:  # no file, or no valid line at all
        bad(str(e))
        questions = []
    first_use = {}
    for q in questions:
        counts[f"questions ({q['split']})"] += 1
        first_use.setdefault(q["image"], q["_where"])
        if answer_vocabulary is not None and q["answer"] not in answer_vocabulary:
            bad(
                f"{q['_where']}answer {q['answer']!r} is not in the answer vocabulary "
                f"({len(answer_vocabulary)} answers)"
            )
    for name, read in (("scenes.jsonl", read_scenes), ("captions.jsonl", read_captions)):
        if os.path.isfile(os.path.join(data_dir, name)):
            records = read(data_dir, bad)
            counts[name.split(".")[0]] = len(records)
            for image in records:
                first_use.setdefault(image, f"{os.path.join(data_dir, name)}: ")
    counts["images"] = len(first_use)
    for image, where in sorted(first_use.items()):
        path = os.path.join(data_dir, image)
        try:
            if check_images:
                load_image(path)
            elif not os.path.isfile(path):
                raise SimMIMInputError(f"image not found: {path}")
        except SimMIMInputError as e:
            bad(f"{where}{e}")
    return bad.messages, dict(counts)
