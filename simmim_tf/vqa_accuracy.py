"""The official VQA accuracy (Antol et al. 2015; VQAv2, Goyal et al. 2017).

An answer is right as far as at least 3 of the 10 human answers agree:
accuracy = min(#humans who gave it / 3, 1), averaged over the 10 subsets of
9 humans that leave one out. Answers are compared after the normalisation
of the official evaluation script (vqaEval.py): punctuation, number words
to digits, articles dropped. Its table of contractions ("dont" ->
"don't") is not applied here; it only matters for answers that contain one.
"""

import re

_PUNCTUATION = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-"]
_PUNCTUATION += [">", "<", "@", "`", ",", "?", "!"]
_NUMBER_WORDS = {
    "none": "0",
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}
_ARTICLES = {"a", "an", "the"}
# As in vqaEval.py, including its "(?!<=\d)" (a lookahead, not a
# lookbehind): a period is dropped unless a digit follows it ("2.5" stays).
_PERIOD = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_IN_NUMBER = re.compile(r"(\d)(\,)(\d)")


def normalize_answer(answer: str) -> str:
    """Lower-case, punctuation, number words and articles as vqaEval.py does."""
    text = answer.replace("\n", " ").replace("\t", " ").strip().lower()
    for p in _PUNCTUATION:
        if (p + " " in text or " " + p in text) or _COMMA_IN_NUMBER.search(text):
            text = text.replace(p, "")
        else:
            text = text.replace(p, " ")
    text = _PERIOD.sub("", text)
    words = [_NUMBER_WORDS.get(w, w) for w in text.split()]
    return " ".join(w for w in words if w not in _ARTICLES)


def vqa_accuracy(predicted: str, human_answers: list) -> float:
    """Accuracy of one predicted answer against the (usually 10) human answers."""
    if not human_answers:
        raise ValueError("vqa_accuracy needs at least one human answer")
    predicted = normalize_answer(predicted)
    humans = [normalize_answer(a) for a in human_answers]
    scores = []
    for left_out in range(len(humans)):
        matches = sum(h == predicted for i, h in enumerate(humans) if i != left_out)
        scores.append(min(1.0, matches / 3))
    return sum(scores) / len(scores)
