import collections
import importlib
import json
import re

import pytest

pytest.importorskip("pint", reason="computes the answers these tests check (absent on the GPU machine)")

from homework.units import generator, reader, table as units
from homework.base_llm import parse_answer
from homework import settings
from homework.data import DATA_DIR, DataError, Dataset, benchmark
from homework.cli import checked_question
from homework.evaluation import evaluate, miss_kind, quantity_kind

SPLITS = {split: Dataset(split).data for split in ("train", "valid")}


def test_sizes_and_no_valid_question_in_train():
    assert len(SPLITS["train"]) == len(SPLITS["valid"]) == 1000
    assert not {q for q, _ in SPLITS["valid"]} & {q for q, _ in SPLITS["train"]}


def _parse(question):
    """(n, src, dst, phrasing) of a question."""
    parsed = reader.read_question(question)
    assert parsed, f"no phrasing makes {question!r}"
    phrasing = next(p for p in generator.PHRASINGS if p.format(n=parsed[0], src=parsed[1], dst=parsed[2]) == question)
    return (*parsed, phrasing)


@pytest.mark.parametrize("split", SPLITS)
def test_every_row_agrees_with_pint(split):
    import pint

    ureg = pint.UnitRegistry()
    for question, answer in SPLITS[split]:
        n, src, dst, _ = _parse(question)
        assert 1 <= n <= 10
        cat = reader.category(question)
        expected = (n * ureg(units.UNITS[cat][src]) / ureg(units.UNITS[cat][dst])).to("dimensionless").magnitude
        assert answer == pytest.approx(expected, rel=1e-12), question


def test_spot_checks_against_known_conversions():
    assert units.convert(6, "kg", "gram") == pytest.approx(6000)
    assert units.convert(8, "KB", "byte") == pytest.approx(8000)  # decimal kilobytes
    assert units.convert(1, "in", "cm") == pytest.approx(2.54)
    assert units.convert(2, "decades", "years") == pytest.approx(20)
    assert units.convert(1, "gallon", "L") == pytest.approx(3.785411784)
    assert units.convert(36, "km/h", "m/s") == pytest.approx(10)


def test_category_and_phrasing_coverage():
    rows = SPLITS["train"] + SPLITS["valid"]
    cats = collections.Counter(reader.category(q) for q, _ in rows)
    assert set(cats) == set(units.UNITS), cats
    assert min(cats.values()) >= 100, cats
    phrasings = collections.Counter(_parse(q)[3] for q, _ in rows)
    assert len(generator.PHRASINGS) >= 20 and len(phrasings) == len(generator.PHRASINGS)
    spellings = {s for q, _ in rows for s in _parse(q)[1:3]}
    for required in ["cm^3", "cm**3", "fluid ounce", "metric ton", "kmh", "mph", "KB", "kB", "centuries", "mi"]:
        assert required in spellings, required


def test_every_spelling_pair_reads_in_every_phrasing():
    # every pair of different units the generator can write, ambiguous spellings (B, M, G, l, in, m, h, s) included
    for cat, spellings in units.UNITS.items():
        for src in spellings:
            for dst in spellings:
                if spellings[src] == spellings[dst]:
                    continue
                for phrasing in generator.PHRASINGS:
                    question = phrasing.format(n=3, src=src, dst=dst)
                    reading = reader.read_question(question)
                    assert reading == (3, src, dst) and reading.category == cat, question


def test_regeneration_is_byte_identical(tmp_path, monkeypatch):
    monkeypatch.setattr(generator, "DATA_DIR", tmp_path)
    generator.main("train", "valid", "reworded")
    for split in ("train", "valid", "reworded"):  # offgrid.json left out the conversions of an earlier data/rft.json
        assert (tmp_path / f"{split}.json").read_bytes() == (DATA_DIR / f"{split}.json").read_bytes(), split
    (tmp_path / "valid.json").write_text("[]\n")  # a file of the user's: replaced only with --overwrite
    with pytest.raises(DataError, match=f"{tmp_path / 'train.json'}, {tmp_path / 'valid.json'} exist: pass --overwrite"):
        generator.main("train", "valid")
    assert (tmp_path / "valid.json").read_text() == "[]\n"
    generator.main("valid", overwrite=True)
    assert (tmp_path / "valid.json").read_bytes() == (DATA_DIR / "valid.json").read_bytes()


def test_benchmark_scores_what_the_model_answers():
    dataset = Dataset("valid")

    class Half:
        def answer(self, *questions):
            truth = {q: a for q, a in dataset.data}
            return [truth[q] if i % 2 == 0 else float("nan") for i, q in enumerate(questions)]

    result = benchmark(Half(), dataset, 10)
    assert (result.accuracy, result.answer_rate, len(result.samples)) == (0.5, 0.5, 10)
    assert result.samples[0].is_correct and not result.samples[1].is_correct


@pytest.mark.parametrize("text, error", [
    ("[[", "is not valid JSON"),
    ('{"q": 1}', "expected a list of [question, answer] rows, found a dict"),
    ('[["How many g in 1 kg?"]]', "row 0 is"),
    ('[["ok", 1], [3, 1]]', "row 1's question is 3, not text"),
    ('[["ok", NaN]]', "row 0's answer is nan, not a finite number"),
    ('[["ok", "12"]]', "row 0's answer is '12', not a finite number"),
    ("[]", "has no rows"),
])
def test_a_malformed_split_is_a_one_line_error(text, error, tmp_path, monkeypatch):
    from homework.data import DataError

    (tmp_path / "valid.json").write_text(text)
    monkeypatch.setenv("HOMEWORK_DATA", str(tmp_path))
    with pytest.raises(DataError, match=re.escape(error)) as info:
        Dataset("valid")
    assert str(tmp_path / "valid.json") in str(info.value) and "\n" not in str(info.value)


def test_missing_split_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="no dataset split 'nope'"):
        Dataset("nope")


@pytest.mark.parametrize("question, kind", [
    ("How many g are there per 6 kg?", "1 to 10"),
    ("How many g are there per 10 kg?", "1 to 10"),
    ("convert 2.5 kg to pounds", "half"),
    ("convert 1.75 kg to pounds", "quarter"), ("convert 0.25 kg to pounds", "quarter"),
    ("convert 3.7 kg to pounds", "decimal"), ("convert 0.35 kg to pounds", "decimal"),
    ("What is 40 ft in m?", "11 to 999"),
    ("km in 1,000 ft?", "1000 and over"),
    ("3 kelvin in celsius", "unread"),  # not a unit we know
])
def test_quantity_kind(question, kind):
    assert quantity_kind(question) == kind


def test_evaluate_reports_accuracy_per_kind_of_quantity(tmp_path, monkeypatch, capsys):
    rows = [["How many g are there per 6 kg?", 6000.0], ["How many g are there per 2.5 kg?", 2500.0],
            ["How many g are there per 1.5 kg?", 1500.0], ["How many g are there per 1,500 kg?", 1500000.0]]
    (tmp_path / "valid.json").write_text(json.dumps(rows))
    monkeypatch.setenv("HOMEWORK_DATA", str(tmp_path))

    class RightOnDecimalsAndThousands:  # wrong on 6 kg and 1.5 kg
        calls = 0

        def format_prompt(self, question):
            return question

        def batched_generate(self, prompts):  # a reply that differs from call to call, as a batch of others can
            self.calls += 1
            return [f"call {self.calls}: <answer>{a if q in (rows[1][0], rows[3][0]) else 0}</answer>" for q, (_, a) in zip(prompts, rows)]

        parse_answer = staticmethod(parse_answer)

    model = RightOnDecimalsAndThousands()
    evaluate(model, 10)
    out = capsys.readouterr().out
    assert "accuracy=0.50 answer_rate=1.00 (4 valid questions)" in out
    assert "per quantity: 1 to 10=0.00 (n=1)  1000 and over=1.00 (n=1)  half=0.50 (n=2)\n" in out
    assert "misses: no factor stated=2\n" in out
    # the misses shown are what was scored, not a second generation
    assert model.calls == 1 and out.count("  miss: ") == 2 and out.count("from 'call 1: <answer>0</answer>'") == 2


@pytest.mark.parametrize("text, answer, kind", [
    ("1 mi = 1.609 km. 7.2 * 1.609 = 10.58. <answer>10.58</answer>", 10.58, "product"),  # the true factor, 9% off
    ("1 mi = 1.609 km. 7.2 * 1.609 = 1.15848. <answer>1.15848</answer>", 1.15848, "power of ten"),
    ("1 mi = 1.609 km. 7.2 * 1.609 = 115848. <answer>115848</answer>", 115848, "power of ten"),
    ("1 mi = 1.5 km. 7.2 * 1.5 = 10.8. <answer>10.8</answer>", 10.8, "wrong factor"),
    ("7.2 * 1.5 = 10.8. <answer>10.8</answer>", 10.8, "no factor stated"),
    ("<answer>10.8</answer>", 10.8, "no factor stated"),  # a direct answer
    ("1 mi = 1.609 km. 7.2 * 1.609 =", float("nan"), "no answer"),
])
def test_miss_kind(text, answer, kind):
    assert miss_kind("How many km are there per 7.2 mi?", text, answer, 11.5873) == kind


def test_miss_kind_of_a_question_that_does_not_read():
    assert miss_kind("3 kelvin in celsius", "<answer>5</answer>", 5.0, -270.15) == "unread"


@pytest.mark.parametrize("stage", ["cot", "sft", "rft"])
@pytest.mark.parametrize("question, message", [("", "empty"), ("  \n", "empty"), ("How many g in 1 kg? " * 60, "at most 1000")])
def test_ask_refuses_a_question_before_it_loads_a_model(stage, question, message, monkeypatch):
    module = importlib.import_module(f"homework.{stage}")
    monkeypatch.setattr(module, "load", lambda *args, **kwargs: pytest.fail("a model was loaded"))
    with pytest.raises(settings.UsageError, match=message):
        module.ask(question)


def test_a_question_fire_read_as_a_number_is_asked_as_text():
    assert checked_question(42) == "42" and checked_question(" 3 ft to in ") == "3 ft to in"


@pytest.mark.parametrize("text, error", [
    ("[[", "is not valid JSON"),
    ("[]", "has no rows"),
    ('[["How many g in 1 kg?", 1000]]', "not a [question, answer, reasoning] row"),
    ('[["How many g in 1 kg?", 1000, 7]]', "not a [question, answer, reasoning] row"),
    ('[["How many g in 1 kg?", "a lot", "1 kg = 1000 g."]]', "row 0's answer is 'a lot'"),
    ('[["tell me a joke", 1.0, "no."]]', "has no row whose question reads as a conversion"),
])
def test_malformed_rft_data_is_refused_before_a_model_loads(text, error, tmp_path, monkeypatch):
    from homework import rft

    path = tmp_path / "rft.json"
    path.write_text(text)
    monkeypatch.setattr(rft, "RFTModel", lambda *args, **kwargs: pytest.fail("a model was loaded"))
    for command in (lambda: rft.train(output_dir=str(tmp_path / "out"), data=str(path)), lambda: rft.show(data=str(path))):
        with pytest.raises(DataError, match=re.escape(error)):
            command()
    assert not (tmp_path / "out").exists()  # no empty output folder made


def test_rft_show_names_a_row_that_is_not_there(tmp_path, monkeypatch):
    from homework import rft

    path = tmp_path / "rft.json"
    path.write_text('[["How many g in 1 kg?", 1000, "1 kg = 1000 g. 1 * 1000 = 1000. <answer>1000</answer>"]]')
    monkeypatch.setattr(rft, "RFTModel", lambda *args, **kwargs: pytest.fail("a model was loaded"))
    with pytest.raises(DataError, match="has 1 rows: no row 5"):
        rft.show(5, data=str(path))


def test_an_answer_of_5000_digits_is_a_data_error_naming_the_file(tmp_path):
    from homework.data import read_rows

    path = tmp_path / "rows.json"
    path.write_text('[["How many g in 1 kg?", ' + "9" * 5000 + "]]")
    with pytest.raises(DataError, match="rows.json is not valid JSON: Exceeds the limit"):
        read_rows(path)
    path.write_text('[["How many g in 1 kg?", 1e999]]')  # JSON's own infinity
    with pytest.raises(DataError, match="row 0's answer is inf, not a finite number"):
        read_rows(path)
