"""Accuracy per question family, for Keras and for .tflite models.

No TensorFlow here: the .tflite evaluation runs through `simmim_tf.edge`.
"""

import collections
import json
import os

from simmim_tf.console import stderr_is_terminal, step
from simmim_tf.vqa_accuracy import vqa_accuracy


def accuracy_by_family(predicted, expected, families, human_answers=None, question_types=None):
    """{"overall": {"accuracy", "questions"}, family: {...}, ...}.

    With `human_answers` (VQAv2's ten answers per question, None where a
    question has none) each group also gets "vqa_accuracy", the official
    metric, over the questions that have human answers. With
    `question_types` (the records' "subtype": closest, count, ...) that
    differ from the families, "by_question_type" holds the same per type.
    """
    if question_types is not None and list(question_types) != list(families):
        result = accuracy_by_family(predicted, expected, families, human_answers)
        by_type = accuracy_by_family(predicted, expected, question_types, human_answers)
        by_type.pop("overall")
        return {**result, "by_question_type": by_type}
    correct = collections.defaultdict(int)
    total = collections.defaultdict(int)
    vqa = collections.defaultdict(list)
    humans = human_answers if human_answers is not None else [None] * len(predicted)
    for p, e, f, h in zip(predicted, expected, families, humans, strict=True):
        for key in ("overall", f):
            total[key] += 1
            correct[key] += int(p == e)
            if h:
                vqa[key].append(vqa_accuracy(p, h))
    result = {k: {"accuracy": correct[k] / total[k], "questions": total[k]} for k in sorted(total)}
    for k, scores in vqa.items():
        result[k]["vqa_accuracy"] = sum(scores) / len(scores)
    return result


def format_accuracy(result, title):
    """A small aligned table for the terminal."""
    lines = [title]
    for family, r in result.items():
        if family == "by_question_type":
            lines.append("  per question type:")
            lines += format_accuracy(r, "").splitlines()[1:]
            continue
        vqa = f"  VQA accuracy {100 * r['vqa_accuracy']:6.2f}%" if "vqa_accuracy" in r else ""
        lines.append(
            f"  {family:<16} {100 * r['accuracy']:6.2f}%  ({r['questions']} questions){vqa}"
        )
    return "\n".join(lines)


def tflite_answers(model_path, question_set):
    """The answer a .tflite model gives to each question of a `QuestionSet`."""
    from tqdm import tqdm

    from simmim_tf.edge import EdgePredictor

    predictor = EdgePredictor(model_path)
    return [
        predictor.predict(question_set.images[i], q, top_k=1).answer
        for i, q in tqdm(
            zip(question_set.image_index, question_set.questions, strict=True),
            total=len(question_set),
            desc=os.path.basename(model_path),
            unit="q",
            disable=not stderr_is_terminal(),
        )
    ]


def evaluate_tflite(model_path, data_dir, split="test"):
    """Accuracy per family of a .tflite model; writes <model>.eval.json beside it."""
    from simmim_tf.data.vqa_dataset import load_split
    from simmim_tf.edge import EdgePredictor

    with step(f"reading the {split} split of {data_dir}"):
        questions = load_split(data_dir, split, image_size=EdgePredictor(model_path).image_size)
    with step(f"answering its {len(questions):,} questions"):
        predicted = tflite_answers(model_path, questions)
    result = accuracy_by_family(
        predicted,
        questions.answers,
        questions.families,
        questions.human_answers,
        questions.question_types,
    )
    with open(os.path.splitext(model_path)[0] + ".eval.json", "w") as f:
        json.dump({"split": split, "data": data_dir, "accuracy": result}, f, indent=2)
    return result
