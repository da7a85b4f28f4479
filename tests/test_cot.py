import re
import subprocess
import sys

import pytest

from homework.base_llm import parse_answer
from homework.cot import CoTModel, RFTModel, fmt, rationale
from homework.data import Dataset, is_answer_valid
from homework.units import read_question


@pytest.fixture
def cot(tiny_model, tokenizer):
    return CoTModel(model=tiny_model, tokenizer=tokenizer)


def test_prompt_is_a_chat_ending_with_the_generation_prompt(cot):
    question = "How many gram are there per 6 kg?"
    prompt = cot.format_prompt(question)
    assert prompt.startswith("<|im_start|>system\n")
    assert prompt.endswith(f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n")
    assert prompt.count("<|im_start|>assistant\n") == cot.num_examples + 1
    assert "<answer>" in prompt and "concise" in prompt


def test_a_hint_only_adds_the_answer_to_the_last_question(cot):
    question = "How many gram are there per 6 kg?"
    plain, hinted = cot.format_prompt(question), cot.format_prompt(question, hint=6000.0)
    assert hinted == plain.replace(f"{question}<|im_end|>\n<|im_start|>assistant\n",
                                   f"{question} (Hint: the answer is 6000.)<|im_end|>\n<|im_start|>assistant\n")
    assert hinted.count("Hint") == 1 and hinted != plain


def test_every_example_answer_is_correct(cot):
    pytest.importorskip("pint")
    from homework.units import convert

    for question, _ in Dataset("valid").data[:200] + Dataset("reworded").data[:100]:
        examples = cot.examples(question)
        assert len(examples) == cot.num_examples
        for example_question, worked in examples:
            assert is_answer_valid(parse_answer(worked), convert(*read_question(example_question))), worked
            # and the arithmetic the example shows agrees with its answer
            n, factor, product = re.search(r"(\S+) \* (\S+) = (\S+)\.", worked).groups()
            assert float(n) * float(factor) == pytest.approx(float(product), rel=1e-4)


def test_examples_are_asked_in_the_question_wording(cot):
    question = "how many grammes in 2.5 kilos"
    examples = cot.examples(question)
    assert [q for q, _ in examples] == [f"how many grammes in {read_question(q).n} kilos" for q, _ in examples]
    assert all(worked.startswith("1 kilos = 1000 grammes. ") for _, worked in examples)
    rft = RFTModel(model=cot.model, tokenizer=cot.tokenizer)  # as the shipped adapter was trained
    training = dict(Dataset("train").data)
    assert all(q in training and read_question(q).units == ("kilogram", "gram") for q, _ in rft.examples(question))


def test_examples_prefer_the_same_unit_pair_then_the_same_category(cot):
    for question in ["How many gram are there per 6 kg?", "how many grammes in 2.5 kilos"]:  # any wording
        examples = cot.examples(question)
        assert len(examples) == cot.num_examples
        assert all(read_question(q).units == ("kilogram", "gram") for q, _ in examples)
    # no training question converts pounds to tonnes: the examples come from the same category
    question = "How many tonnes in 3 lbs?"
    assert not [q for q, _ in Dataset("train").data if read_question(q).units == ("pound", "metric_ton")]
    examples = cot.examples(question)
    assert len(examples) == cot.num_examples and {read_question(q).category for q, _ in examples} == {"mass"}


def test_unreadable_training_rows_are_skipped_and_counted(tiny_model, tokenizer, tmp_path, monkeypatch, capsys):
    rows = Dataset("train").data[:5] + [["Tell me a joke about 3 cats.", 1.0], ["How many kelvin in 3 celsius?", 2.0]]
    (tmp_path / "train.json").write_text(__import__("json").dumps(rows))
    monkeypatch.setenv("HOMEWORK_DATA", str(tmp_path))
    cot = CoTModel(model=tiny_model, tokenizer=tokenizer)
    assert [q for q, _, _ in cot.train] == [q for q, _ in rows[:5]]
    assert "skipped 2 of 7 rows" in capsys.readouterr().err
    assert cot.format_prompt("What is 3 kelvin in celsius?").count("<|im_start|>assistant") == 4  # never a crash


@pytest.mark.parametrize("x,text", [(6000, "6000"), (0.3048, "0.3048"), (26.246719160104988, "26.2467"), (3.15576e9, "3155760000"), (12.0, "12")])
def test_fmt(x, text):
    assert fmt(x) == text


def test_rationale_reads_as_intended():
    assert rationale(6, "kg", "g", 6000.0) == "1 kg = 1000 g. 6 * 1000 = 6000. <answer>6000</answer>"


@pytest.mark.slow
def test_cot_cli_on_a_small_slice():
    result = subprocess.run(
        [sys.executable, "-m", "homework.cot", "test", "--max_question", "4"],
        capture_output=True, text=True, timeout=600, env={**__import__("os").environ, "HOMEWORK_CHECKPOINT": "embedded"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.search(r"accuracy=\d\.\d\d answer_rate=\d\.\d\d \(4 valid questions\)", result.stdout)
    assert "per category:" in result.stdout
