import math

import pytest

from homework.base_llm import parse_answer
from homework.data import is_answer_valid

CASES = [
    # text, expected, why
    ("<answer>6000</answer>", 6000.0, "the plain case"),
    ("6 kg = 6 * 1000 g = <answer>6000</answer>", 6000.0, "reasoning before the tag"),
    ("<answer> 6000 </answer>", 6000.0, "spaces inside the tag"),
    ("<answer>6000", 6000.0, "closing tag cut off by max_new_tokens"),
    ("<answer>6,000</answer>", 6000.0, "thousands separator"),
    ("<answer>1,234,567.5</answer>", 1234567.5, "several separators and a decimal"),
    ("<answer>-3.5</answer>", -3.5, "a negative"),
    ("<answer>1e3</answer>", 1000.0, "scientific notation"),
    ("<answer>2.5E-4</answer>", 0.00025, "scientific notation, negative exponent"),
    ("<answer>.5</answer>", 0.5, "no leading zero"),
    ("<answer>6000 g</answer>", 6000.0, "a unit inside the tag"),
    ("<answer>about 6000 grams</answer>", 6000.0, "words before the number inside the tag"),
    ("<answer>12</answer> and later <answer>13</answer>", 12.0, "two answers: the first counts"),
    ("<answer>x</answer> <answer>7</answer>", 7.0, "a malformed answer then a good one: strict wins"),
    ("The answer is 6000", math.nan, "no tag at all"),
    ("<answer></answer>", math.nan, "an empty tag"),
    ("<answer>six thousand</answer>", math.nan, "a number in words"),
    ("", math.nan, "empty text"),
    (None, math.nan, "not even text"),
]


@pytest.mark.parametrize("text,expected,why", CASES, ids=[c[2] for c in CASES])
def test_parse_answer(text, expected, why):
    got = parse_answer(text)
    if math.isnan(expected):
        assert math.isnan(got), why
    else:
        assert got == pytest.approx(expected), why


@pytest.mark.parametrize(
    "answer,correct,ok",
    [
        (6000, 6000, True),
        (6290, 6000, True),  # 4.8% off
        (6310, 6000, False),  # 5.2% off
        (96, 100, True),
        (0.0124, 0.0126, False),  # 1.6% apart, but rounded to 3 decimals they are 0.012 vs 0.013
        (1234.5671, 1234.5674, True),
        (math.nan, 6000, False),
        (-6000, 6000, False),
    ],
)
def test_is_answer_valid(answer, correct, ok):
    assert is_answer_valid(answer, correct) is ok
