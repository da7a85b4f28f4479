"""The pilot's own reasoning forms (scripts/pilot.py): `steps` writes every partial product, and `holds` checks each;
its worked-row prompt shows a training row of the pair, never the question's own conversion."""
import importlib.util
import random
import re
from pathlib import Path

import pytest

from homework.base_llm import parse_answer
from homework.data import Dataset
from homework.units import rationale
from homework.units.reader import read_question

spec = importlib.util.spec_from_file_location("pilot", Path(__file__).parent.parent / "scripts" / "pilot.py")
pilot = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pilot)

QUESTION, TRUTH = "How many kilometer are there per 7.2 mile?", 7.2 * 1.609344


@pytest.mark.parametrize("x, digits, expected", [
    (7.2, None, (72, -1)), (250, None, (25, 1)), (6, None, (6, 0)), (0.035, None, (35, -3)), (1.75, None, (175, -2)),
    (1.609344, 3, (161, -2)), (1000, 3, (1, 3)), (0.0283168, 3, (283, -4)), (5280, 3, (528, 1)),
])
def test_scientific(x, digits, expected):
    assert pilot.scientific(x, digits) == expected


def test_the_example_in_the_docstring():
    assert pilot.steps(7.2, "mile", "kilometer", 1.609344) == (
        "1 mile = 161e-2 kilometer. 72e-1 * 161e-2. 72 * 161 = 161 * 70 + 161 * 2 = 11270 + 322 = 11592. -1 + -2 = -3. "
        "<answer>11592e-3</answer>")


def test_partial_products_are_added_one_at_a_time():
    assert pilot.product_steps(175, 454) == (
        "175 * 454 = 454 * 100 + 454 * 70 + 454 * 5 = 45400 + 31780 + 2270 = 77180 + 2270 = 79450")
    assert pilot.product_steps(6, 161) == "6 * 161 = 966"  # one digit: a product the model writes at once
    assert pilot.product_steps(305, 12) == "305 * 12 = 12 * 300 + 12 * 5 = 3600 + 60 = 3660"  # no zero term


def test_every_step_is_true_and_the_answer_within_half_a_percent():
    rng = random.Random(0)
    for _ in range(500):
        n = rng.choice([rng.randint(1, 9999), round(rng.uniform(0.01, 10), rng.randint(1, 3))])
        factor = 10 ** rng.uniform(-7, 9)
        text = pilot.steps(n, "a", "b", factor)
        sides = text.split(". ")[2].split(" = ")  # "72 * 161", "161 * 70 + 161 * 2", "11270 + 322", "11592"
        assert all(re.fullmatch(r"\d+( [*+] \d+)*", side) for side in sides), text
        assert len({eval(side) for side in sides}) == 1, text  # every side the same number
        assert parse_answer(text) == pytest.approx(n * factor, rel=0.006), text


@pytest.mark.parametrize("form", ["steps"])
def test_the_pilot_forms_are_known_to_holds(form):
    write = rationale.FORMS[form]  # added by the pilot
    assert rationale.holds(QUESTION, write(7.2, "mile", "kilometer", 1.609344), TRUTH, form)
    assert not rationale.holds(QUESTION, write(7.2, "mile", "kilometer", 1.5), TRUTH, form)


@pytest.mark.parametrize("change, why", [
    (("11270", "11170"), "a partial product wrong"),
    (("= 11592.", "= 11692."), "a sum wrong"),
    (("-1 + -2 = -3", "-1 + -2 = -2"), "the exponents added wrong"),
    (("11592e-3</", "11592e-2</"), "the answer not the product"),
    (("161 * 70 + 161 * 2", "161 * 72"), "a step skipped"),
])
def test_holds_rejects_any_step_of_steps_that_does_not(change, why):
    text = pilot.steps(7.2, "mile", "kilometer", 1.609344).replace(*change)
    assert text != pilot.steps(7.2, "mile", "kilometer", 1.609344), "the change applies"
    assert not rationale.holds(QUESTION, text, TRUTH, "steps"), why


def test_the_worked_row_prompt_is_a_training_row_of_the_pair_then_the_question(tiny_model, tokenizer):
    model = pilot.WorkedRow(model=tiny_model, tokenizer=tokenizer)
    shot, asked = model.format_prompt("how many grammes in 6.5 kilos").split("\n")
    assert asked == "Convert 6.5 kilogram to gram."
    n = float(re.match(r"Convert (\S+) kilogram to gram\.", shot).group(1))
    assert shot.endswith(" " + rationale.write(read_question(f"{n} kg to g"), 1000))
    train = {(r.units, r.n) for q, _ in Dataset("train").data if (r := read_question(q))}
    assert (("kilogram", "gram"), n) in train  # a training row, as the training set answers it
    for q, _ in Dataset("valid").data[:50]:  # never the question's own conversion
        reading, prompt = read_question(q), model.format_prompt(q)
        shown = read_question(prompt.split("\n")[0]) if "\n" in prompt else None
        assert shown is None or (shown.units == reading.units and shown.n != reading.n)
    assert model.format_prompt("tell me a joke") == "tell me a joke"  # nothing to show: the question alone
