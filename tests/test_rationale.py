"""The reasoning RFT learns (rationale.plain, rationale.split) and its verifier (rationale.holds): no model involved."""

import pytest

from homework import datagen
from homework.units import rationale


QUESTION, TRUTH = "How many kilometer are there per 7.2 mile?", 7.2 * 1.609344


@pytest.mark.parametrize("form", list(rationale.FORMS))
def test_holds_accepts_each_form_at_a_true_factor(form):
    write = rationale.FORMS[form]
    assert rationale.holds(QUESTION, write(7.2, "mile", "kilometer", 1.609344), TRUTH, form)
    assert rationale.holds(QUESTION, write(7.2, "mile", "kilometer", 1.6), TRUTH, form)  # 0.6% off: true enough
    assert not rationale.holds(QUESTION, write(7.2, "mile", "kilometer", 1.5), TRUTH, form)  # a false factor worked out right


@pytest.mark.parametrize("form, change, why", [
    ("split", ("11.27 + 0.322", "11.27 + 0.332"), "a partial product wrong"),
    ("split", ("= 11.592.", "= 11.692."), "the sum wrong"),
    ("plain", ("= 11.5848.", "= 11.6848."), "the product wrong"),
    ("plain", ("11.5848</", "11.6</"), "the answer not the product"),
    ("plain", ("7.2 * 1.609", "7 * 1.609"), "another quantity"),
    ("rounded", ("= 11.6.", "= 11.7."), "the product wrong"),
    ("rounded", ("= 11.6.", "= 11.592."), "the product not to 3 significant figures"),
    ("rounded", ("11.6</", "11.59</"), "the answer not the product"),
])
def test_holds_rejects_any_step_that_does_not(form, change, why):
    text = rationale.FORMS[form](7.2, "mile", "kilometer", 1.609344).replace(*change)
    assert text != rationale.FORMS[form](7.2, "mile", "kilometer", 1.609344), "the change applies"
    assert not rationale.holds(QUESTION, text, TRUTH, form), why


def test_holds_rejects_what_does_not_read():
    assert not rationale.holds("tell me a joke", rationale.plain(7.2, "mile", "kilometer", 1.609344), TRUTH)
    assert not rationale.holds(QUESTION, "<answer>11.59</answer>", TRUTH)


def test_datagen_keeps_the_first_right_sample_that_states_the_factor_as_the_model_wrote_it():
    wrong = "1 mile = 1.5 kilometer. 7.2 * 1.5 = 10.8. <answer>10.8</answer>"
    lucky = "1 mile = 1.55 kilometer. 7.2 * 1.55 = 11.16. <answer>11.5</answer>"  # right answer, false product and factor
    right = " 1 mi = 1.609 km. 7.2 * 1.609 = 11.5848. <answer>11.5848</answer>\n"
    kept = datagen.select(QUESTION, TRUTH, [wrong, lucky, right])
    assert kept == right.strip()  # the model's own words, not rewritten
    assert datagen.select(QUESTION, TRUTH, [wrong, lucky, "no answer"]) is None
    assert datagen.select("tell me a joke", TRUTH, [right]) is None
