import re
import subprocess
import sys

import pytest

from homework.base_llm import parse_answer
from homework.cot import CoTModel
from homework.units import fewshot
from homework.units.fewshot import worked_answer as rationale
from homework.units.numbers import fmt, leading_digit, rounded, shaped
from homework.units.reader import plain_numbers
from homework.data import Dataset, is_answer_valid
from homework.units.reader import read_question


@pytest.fixture
def cot(tiny_model, tokenizer):
    return CoTModel(model=tiny_model, tokenizer=tokenizer)


def test_prompt_is_a_chat_ending_with_the_generation_prompt(cot):
    question = "How many gram are there per 6 kg?"
    prompt = cot.format_prompt(question)
    assert prompt.startswith("<|im_start|>system\n")
    assert prompt.endswith(f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n")
    assert prompt.count("<|im_start|>assistant\n") == fewshot.EXAMPLES + 1
    assert "<answer>" in prompt and "concise" in prompt


def test_every_example_answer_is_correct(cot):
    pytest.importorskip("pint")
    from homework.units.table import convert

    for question, _ in Dataset("valid").data[:200] + Dataset("reworded").data[:100]:
        examples = cot.fewshot.examples(question)
        assert len(examples) == fewshot.EXAMPLES
        for example_question, worked in examples:
            assert is_answer_valid(parse_answer(worked), convert(*read_question(example_question))), worked
            # and the arithmetic the example shows agrees with its answer
            n, factor, product = re.search(r"(\S+) \* (\S+) = (\S+)\.", worked).groups()
            assert float(n) * float(factor) == pytest.approx(float(product), rel=1e-4)


def test_no_example_is_the_question_itself_in_other_words(cot):
    # A training row that converts the same quantity between the same units (or the question reworded with
    # that row's quantity) would put the answer in the prompt: about a third of the valid questions had one.
    model = cot
    questions = [q for q, _ in Dataset("valid").data[:300] + Dataset("reworded").data[:100]]
    assert "Please turn 2 gallon into cm**3." in questions
    asked = [(read_question(q), [read_question(e) for e, _ in model.fewshot.examples(q)]) for q in questions]
    assert all(len(examples) == fewshot.EXAMPLES for _, examples in asked)
    assert not [r for r, examples in asked if (r.units, r.n) in {(e.units, e.n) for e in examples}]
    # and each still shows its own pair, at another quantity: the closest example (borrowed, in the question's
    # words, where that pair's training rows all ask the question's quantity: "Please turn 2 gallon into cm**3.")
    assert all(examples[-1].units == r.units for r, examples in asked)


def test_examples_are_asked_in_the_question_wording(cot):
    question = "how many grammes in 2.5 kilos"
    examples = cot.fewshot.examples(question)
    assert [q for q, _ in examples] == [f"how many grammes in {read_question(q).n} kilos" for q, _ in examples]
    assert all(worked.startswith("1 kilos = 1000 grammes. ") for _, worked in examples)


@pytest.mark.parametrize("question,shape", [
    ("how many grammes in 2.5 kilos", lambda n: n % 1 == 0.5 and n < 10),  # halves, as the question's
    ("convert 1,500 kg to g", lambda n: n % 1000 == 500 and 1500 <= n < 10000),  # _500
    ("4000 kg to g", lambda n: n % 1000 == 0 and 1000 <= n < 10000),
    ("what is 0.25 kg in g", lambda n: round(n * 100) % 10 == 5 and n < 1),
    ("37 kg in g", lambda n: n % 10 == 7 and 10 < n < 100),
    ("6 kg in g", lambda n: n == int(n) and 1 <= n <= 10),  # as the training rows ask: their own quantities
])
def test_example_quantities_take_the_question_shape(cot, question, shape):
    """The examples multiply quantities like the question's, so the product the model writes is one it saw
    worked: 2.5 -> 1.5, 7.5, ...; 1,500 -> 2500, 7500; 37 -> 27, 77."""
    examples = cot.fewshot.examples(question)
    quantities = [read_question(q).n for q, _ in examples]
    assert len(set(quantities)) == fewshot.EXAMPLES and all(shape(n) for n in quantities), quantities


def test_a_pair_whose_training_rows_all_ask_10_still_gives_the_closest_example(cot):
    # The training rows that convert g to kg all ask 10 g. A question of 500 g gets one of them as 100 g
    # (10's first digit, 500's shape), right before the question, not only other pairs' factors.
    assert {read_question(q).n for q, _ in Dataset("train").data if read_question(q).units == ("gram", "kilogram")} == {10}
    closest = read_question(cot.fewshot.examples("Convert 500 g to kg.")[-1][0])
    assert (closest.units, closest.n) == (("gram", "kilogram"), 100)


@pytest.mark.parametrize("x,digit", [(7, 7), (70, 7), (0.7, 7), (10, 1), (2.5, 2), (1500, 1)])
def test_leading_digit(x, digit):
    assert leading_digit(x) == digit


@pytest.mark.parametrize("n,digit,expected", [(8.5, 3, 3.5), (4000, 7, 7000), (1500, 2, 2500), (0.25, 9, 0.95), (37, 1, 17), (0.05, 3, 0.03), (6, 9, 9)])
def test_shaped_replaces_the_first_digit(n, digit, expected):
    assert shaped(n, digit) == expected


@pytest.mark.parametrize("text,expected", [
    ("convert 1,500 kg to g", "convert 1500 kg to g"),
    ("12,345,678.5 bytes", "12345678.5 bytes"),
    ("1,5 kg", "1,5 kg"),  # a decimal comma, not a separator
    ("3 ft, 4 in", "3 ft, 4 in"),
    ("10,0000", "10,0000"),
    ("How many mm is 1/2 inch?", "How many mm is 0.5 inch?"),
    ("Convert 1 1/2 hours to minutes", "Convert 1.5 hours to minutes"),
    ("5 km/h in m/s", "5 km/h in m/s"),  # a unit's slash
    ("1/0 kg", "1/0 kg"),
    ("1 1/0 kg", "1 1/0 kg"),
    ("1/3 mile", "0.333333 mile"),
    ("Convert 1.5e-3 km to mm", "Convert 0.0015 km to mm"),
    ("4.5E2 m", "450 m"),
    ("version 3e", "version 3e"),  # no exponent digits: left as written
    ("Convert two thousand meters to km", "Convert 2000 meters to km"),
    ("How many liters in half a gallon?", "How many liters in 0.5 gallon?"),
    ("How many grams in a kilogram?", "How many grams in 1 kilogram?"),
    ("How many minutes in an hour and a half?", "How many minutes in an hour and a half?"),  # no reading: as written
])
def test_plain_numbers_drops_thousands_separators_and_writes_fractions_exponents_and_words_as_decimals(text, expected):
    assert plain_numbers(text) == expected


def test_the_question_reaches_the_model_without_thousands_separators(cot):
    assert cot.format_prompt("convert 1,500 kg to g").endswith("<|im_start|>user\nconvert 1500 kg to g<|im_end|>\n<|im_start|>assistant\n")


def test_examples_prefer_the_same_unit_pair_then_the_same_category(cot):
    for question in ["How many gram are there per 6 kg?", "how many grammes in 2.5 kilos"]:  # any wording
        examples = cot.fewshot.examples(question)
        assert len(examples) == fewshot.EXAMPLES
        assert all(read_question(q).units == ("kilogram", "gram") for q, _ in examples)


def test_every_cot_example_converts_the_question_pair_at_one_factor(cot):
    # One training row converts gallons to quarts; the other examples were other volumes (gallons to fluid ounces),
    # and the model wrote "1 gallon = 128 qt". Now the pair's factor fills in at the other rows' quantities.
    for question, _ in Dataset("valid").data[:200] + Dataset("reworded").data[:100]:
        reading = read_question(question)
        examples = cot.fewshot.examples(question)
        assert {read_question(q).units for q, _ in examples} == {reading.units}, question
        assert len({worked.split(". ")[0].split(" = ")[1] for _, worked in examples}) == 1, examples  # one factor


def test_a_pair_no_training_row_converts_borrows_the_factor_from_the_others(cot):
    pytest.importorskip("pint")
    from homework.units.table import convert

    # no training question converts pounds to tonnes: the factor comes from the other rows (tonne -> pound
    # reversed, or through a third unit), the quantities from rows of the same category
    pair = ("pound", "metric_ton")
    assert pair not in cot.fewshot.factors
    assert cot.fewshot.factor(pair) == pytest.approx(convert(1, "lb", "tonne"), rel=1e-4)
    question = "How many tonnes in 3 lbs?"
    examples = cot.fewshot.examples(question)
    assert len(examples) == fewshot.EXAMPLES
    for q, worked in examples:
        assert read_question(q).units == pair and q.startswith("How many tonnes in ")
        assert worked.startswith("1 lbs = 0.0004536 tonnes. ")  # factor_digits = 4


def test_factor_is_none_when_the_training_rows_cannot_tell(tiny_model, tokenizer, tmp_path, monkeypatch):
    rows = [["How many gram are there per 6 kg?", 6000.0], ["How many m are there per 2 km?", 2000.0]]
    (tmp_path / "train.json").write_text(__import__("json").dumps(rows))
    monkeypatch.setenv("HOMEWORK_DATA", str(tmp_path))
    cot = CoTModel(model=tiny_model, tokenizer=tokenizer)
    assert cot.fewshot.factor(("gram", "kilogram")) == pytest.approx(0.001)  # reversed
    assert cot.fewshot.factor(("kilogram", "pound")) is None  # no row reaches pounds
    examples = cot.fewshot.examples("How many lb in 3 kg?")  # then the rows as they are, the same category closest
    assert [q for q, _ in examples] == ["How many m are there per 2 km?", "How many gram are there per 6 kg?"]


def test_unreadable_training_rows_are_skipped_and_counted(tiny_model, tokenizer, tmp_path, monkeypatch, capsys):
    rows = Dataset("train").data[:5] + [["Tell me a joke about 3 cats.", 1.0], ["How many kelvin in 3 celsius?", 2.0]]
    (tmp_path / "train.json").write_text(__import__("json").dumps(rows))
    monkeypatch.setenv("HOMEWORK_DATA", str(tmp_path))
    cot = CoTModel(model=tiny_model, tokenizer=tokenizer)
    assert [row[0] for row in cot.fewshot.train] == [q for q, _ in rows[:5]]
    assert "skipped 2 of 7 rows" in capsys.readouterr().err
    assert cot.format_prompt("What is 3 kelvin in celsius?").count("<|im_start|>assistant") == 4  # never a crash


@pytest.mark.parametrize("x,text", [(6000, "6000"), (0.3048, "0.3048"), (26.246719160104988, "26.2467"), (3.15576e9, "3155760000"), (12.0, "12")])
def test_fmt(x, text):
    assert fmt(x) == text


def test_rationale_reads_as_intended():
    assert rationale(6, "kg", "g", 6000.0) == "1 kg = 1000 g. 6 * 1000 = 6000. <answer>6000</answer>"
    assert rationale(4, "lb", "kg", 4 * 0.453592) == "1 lb = 0.453592 kg. 4 * 0.453592 = 1.81437. <answer>1.81437</answer>"
    # rounded: the product is worked out from the rounded factor, not rounded from the true answer
    assert rationale(4, "lb", "kg", 4 * 0.453592, digits=4) == "1 lb = 0.4536 kg. 4 * 0.4536 = 1.8144. <answer>1.8144</answer>"
    assert rationale(2.5, "mi", "m", 2.5 * 1609.344, digits=4) == "1 mi = 1609 m. 2.5 * 1609 = 4022.5. <answer>4022.5</answer>"
    # a thousand or more, counted in its power of ten: the product is of a number under 10, as for the training questions
    assert rationale(2500, "g", "oz", 2500 * 0.035274, digits=4) == "1000 g = 35.27 oz. 2.5 * 35.27 = 88.175. <answer>88.175</answer>"
    assert rationale(40000, "m", "km", 40.0) == "10000 m = 10 km. 4 * 10 = 40. <answer>40</answer>"
    assert rationale(370, "kg", "lb", 370 * 2.20462, digits=4) == "1 kg = 2.205 lb. 370 * 2.205 = 815.85. <answer>815.85</answer>"


@pytest.mark.parametrize("x,digits,expected,why", [
    (0.453592, 4, 0.4536, "significant digits, not decimals"),
    (0.0003048, 4, 0.0003048, "leading zeros don't count"),
    (0.0166667, 4, 0.01667, "rounds half up here"),
    (28.3495, 4, 28.35, "decimals that are left"),
    (1609.34, 4, 1609, "four digits before the point: none after"),
    (36525, 4, 36525, "a whole number is never cut to 36520"),
    (310462.5, 5, 310462, "nor a product"),
])
def test_rounded(x, digits, expected, why):
    assert rounded(x, digits) == expected, why


def test_cot_rounds_its_factors(tiny_model, tokenizer):
    cot = CoTModel(model=tiny_model, tokenizer=tokenizer)
    assert {re.search(r"= (\S+) ", worked).group(1) for _, worked in cot.fewshot.examples("How many kg are there per 7 lb?")} == {"0.4536"}


@pytest.mark.slow
def test_cot_cli_on_a_small_slice():
    result = subprocess.run(
        [sys.executable, "-m", "homework.cot", "test", "--max_question", "4"],
        capture_output=True, text=True, timeout=600, env={**__import__("os").environ, "HOMEWORK_CHECKPOINT": "embedded"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.search(r"accuracy=\d\.\d\d answer_rate=\d\.\d\d \(4 valid questions\)", result.stdout)
    assert "per category:" in result.stdout
