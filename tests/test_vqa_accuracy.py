"""The VQA accuracy metric on hand-worked examples."""

import pytest

from simmim_tf.vqa_accuracy import normalize_answer, vqa_accuracy


def test_three_of_ten_humans():
    # Leaving out one of the 3 "yes": 2 matches, 2/3; leaving out one of the
    # 7 "no": 3 matches, 1. Mean: (3 * 2/3 + 7 * 1) / 10 = 0.9.
    humans = ["yes"] * 3 + ["no"] * 7
    assert vqa_accuracy("yes", humans) == pytest.approx(0.9)
    assert vqa_accuracy("no", humans) == pytest.approx(1.0)
    assert vqa_accuracy("maybe", humans) == 0.0


def test_one_human():
    # 1 of 10 says "red": 9 subsets hold it once (1/3), 1 subset not at all.
    humans = ["red"] + ["blue"] * 9
    assert vqa_accuracy("red", humans) == pytest.approx(9 / 30)


def test_four_humans_is_full_credit():
    assert vqa_accuracy("cat", ["cat"] * 4 + ["dog"] * 6) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "raw, normal",
    [
        ("Two", "2"),
        ("the cat", "cat"),
        ("A Dog!", "dog"),
        ("2.5", "2.5"),
        ("yes.", "yes"),
        ("red, white", "red white"),
        ("1,000", "1000"),
        ("t-shirt", "t shirt"),
        ("  none\t", "0"),
    ],
)
def test_normalization(raw, normal):
    assert normalize_answer(raw) == normal


def test_normalization_makes_answers_match():
    humans = ["two", "2", "Two", "2 ", "three", "3", "3", "4", "4", "4"]
    # "2" after normalisation is 4 humans: full credit in every subset.
    assert vqa_accuracy("two", humans) == pytest.approx(1.0)
    assert vqa_accuracy("4", humans) == pytest.approx(0.9)
