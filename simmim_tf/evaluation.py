"""Accuracy per question family (pure Python: used by Keras and edge evaluation)."""

import collections


def accuracy_by_family(predicted, expected, families):
    """{"overall": {"accuracy", "questions"}, family: {...}, ...}."""
    correct = collections.defaultdict(int)
    total = collections.defaultdict(int)
    for p, e, f in zip(predicted, expected, families, strict=True):
        for key in ("overall", f):
            total[key] += 1
            correct[key] += int(p == e)
    return {k: {"accuracy": correct[k] / total[k], "questions": total[k]} for k in sorted(total)}


def format_accuracy(result, title):
    """A small aligned table for the terminal."""
    lines = [title]
    for family, r in result.items():
        lines.append(f"  {family:<16} {100 * r['accuracy']:6.2f}%  ({r['questions']} questions)")
    return "\n".join(lines)
