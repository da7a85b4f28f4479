"""The reasoning RFT learns (rationale.steps) and its verifier (rationale.holds): no model involved."""
import random
import re

import pytest

from homework import datagen
from homework.units import rationale, reader
from homework.base_llm import parse_answer


@pytest.mark.parametrize("x, digits, expected", [
    (7.2, None, (72, -1)), (250, None, (25, 1)), (6, None, (6, 0)), (0.035, None, (35, -3)), (1.75, None, (175, -2)),
    (1.609344, 3, (161, -2)), (1000, 3, (1, 3)), (0.0283168, 3, (283, -4)), (5280, 3, (528, 1)),
])
def test_scientific(x, digits, expected):
    assert rationale.scientific(x, digits) == expected


def test_the_example_in_the_docstring():
    assert rationale.steps(7.2, "mile", "kilometer", 1.609344) == (
        "1 mile = 161e-2 kilometer. 72e-1 * 161e-2. 72 * 161 = 161 * 70 + 161 * 2 = 11270 + 322 = 11592. -1 + -2 = -3. "
        "<answer>11592e-3</answer>")


def test_partial_products_are_added_one_at_a_time():
    assert rationale.product_steps(175, 454) == (
        "175 * 454 = 454 * 100 + 454 * 70 + 454 * 5 = 45400 + 31780 + 2270 = 77180 + 2270 = 79450")
    assert rationale.product_steps(6, 161) == "6 * 161 = 966"  # one digit: a product the model writes at once
    assert rationale.product_steps(305, 12) == "305 * 12 = 12 * 300 + 12 * 5 = 3600 + 60 = 3660"  # no zero term


def test_every_step_is_true_and_the_answer_within_half_a_percent():
    rng = random.Random(0)
    for _ in range(500):
        n = rng.choice([rng.randint(1, 9999), round(rng.uniform(0.01, 10), rng.randint(1, 3))])
        factor = 10 ** rng.uniform(-7, 9)
        text = rationale.steps(n, "a", "b", factor)
        sides = text.split(". ")[2].split(" = ")  # "72 * 161", "161 * 70 + 161 * 2", "11270 + 322", "11592"
        assert all(re.fullmatch(r"\d+( [*+] \d+)*", side) for side in sides), text
        assert len({eval(side) for side in sides}) == 1, text  # every side the same number
        assert parse_answer(text) == pytest.approx(n * factor, rel=0.006), text


QUESTION, TRUTH = "How many kilometer are there per 7.2 mile?", 7.2 * 1.609344


@pytest.mark.parametrize("form", list(rationale.FORMS))
def test_holds_accepts_each_form_at_a_true_factor(form):
    write = rationale.FORMS[form]
    assert rationale.holds(QUESTION, write(7.2, "mile", "kilometer", 1.609344), TRUTH, form)
    assert rationale.holds(QUESTION, write(7.2, "mile", "kilometer", 1.6), TRUTH, form)  # 0.6% off: true enough
    assert not rationale.holds(QUESTION, write(7.2, "mile", "kilometer", 1.5), TRUTH, form)  # a false factor worked out right


@pytest.mark.parametrize("form, change, why", [
    ("steps", ("11270", "11170"), "a partial product wrong"),
    ("steps", ("= 11592.", "= 11692."), "a sum wrong"),
    ("steps", ("-1 + -2 = -3", "-1 + -2 = -2"), "the exponents added wrong"),
    ("steps", ("11592e-3</", "11592e-2</"), "the answer not the product"),
    ("steps", ("161 * 70 + 161 * 2", "161 * 72"), "a step skipped"),
    ("plain", ("= 11.5848.", "= 11.6848."), "the product wrong"),
    ("plain", ("11.5848</", "11.6</"), "the answer not the product"),
    ("plain", ("7.2 * 1.609", "7 * 1.609"), "another quantity"),
])
def test_holds_rejects_any_step_that_does_not(form, change, why):
    text = rationale.FORMS[form](7.2, "mile", "kilometer", 1.609344).replace(*change)
    assert text != rationale.FORMS[form](7.2, "mile", "kilometer", 1.609344), "the change applies"
    assert not rationale.holds(QUESTION, text, TRUTH, form), why


def test_holds_rejects_what_does_not_read():
    assert not rationale.holds("tell me a joke", rationale.steps(7.2, "mile", "kilometer", 1.609344), TRUTH)
    assert not rationale.holds(QUESTION, "<answer>11.59</answer>", TRUTH)


def test_datagen_keeps_the_first_right_sample_that_states_the_factor_as_the_model_wrote_it():
    wrong = "1 mile = 1.5 kilometer. 7.2 * 1.5 = 10.8. <answer>10.8</answer>"
    lucky = "1 mile = 1.55 kilometer. 7.2 * 1.55 = 11.16. <answer>11.5</answer>"  # right answer, false product and factor
    right = " 1 mi = 1.609 km. 7.2 * 1.609 = 11.5848. <answer>11.5848</answer>\n"
    kept = datagen.select(QUESTION, TRUTH, [wrong, lucky, right])
    assert kept == right.strip()  # the model's own words, not rewritten
    assert datagen.select(QUESTION, TRUTH, [wrong, lucky, "no answer"]) is None
    assert datagen.select("tell me a joke", TRUTH, [right]) is None
