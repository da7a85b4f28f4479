import collections
import json
from types import SimpleNamespace

import pytest

pytest.importorskip("pint", reason="computes the answers these tests check (absent on the GPU machine)")

from homework import datagen, sampling
from homework.units import generator, reader, table as units
from homework.data import DATA_DIR, Dataset
from homework.evaluation import quantity_kind

ROWS = Dataset("offgrid").data
READINGS = [reader.read_question(q) for q, _ in ROWS]


def test_the_file_is_in_the_generators_phrasings_and_kinds():
    assert len(ROWS) >= 300 and all(quantity_kind(q) in ("decimal", "quarter", "11 to 999") for q, _ in ROWS)


def test_every_answer_is_pints_and_every_question_reads_in_the_generators_words():
    assert all(READINGS)
    for (question, answer), reading in zip(ROWS, READINGS):
        assert answer == pytest.approx(units.convert(*reading), rel=1e-12), question
        assert any(p.format(n=reading.n, src=reading.src, dst=reading.dst) == question for p in generator.PHRASINGS)


def test_no_training_question_asks_an_off_grid_conversion():
    trained = generator.conversions([DATA_DIR / "train.json", DATA_DIR / "rft.json"])
    assert len(trained) > 700  # the training conversions (distinct), and datagen's kept ones among them
    assert not {(r.units, r.n) for r in READINGS} & trained
    thousands = [500 * i for i in range(2, 20)]  # 1000 to 9500: "1,500 ft"
    assert not {n for r in READINGS for n in [r.n] if n in generator.GRID or n in thousands}


def test_rfts_written_out_rows_ask_none_of_the_off_grid_conversions_scored():
    """rft_data's spread draws quantities of every digit length without reading offgrid, so a few of its rows may
    ask an off-grid conversion by chance; none of the first 100, which the figures score."""
    written = generator.conversions([DATA_DIR / "rft_train.json"])
    assert len(written) > 2000
    assert not {(r.units, r.n) for r in READINGS[:100]} & written
    assert len({(r.units, r.n) for r in READINGS} & written) < 20


def test_the_kinds_come_in_turn():
    kinds = [quantity_kind(q) for q, _ in ROWS]
    assert collections.Counter(kinds[:100]) == {"decimal": 50, "quarter": 25, "11 to 999": 25}
    two_digits = [r.n for r in READINGS[1::4]]
    assert all(round(n, 2) == n != round(n, 1) for n in two_digits)


def test_datagen_samples_a_training_question_that_an_evaluation_set_asks_and_reads_no_evaluation_set(
        tmp_path, monkeypatch):
    reading, (_, answer) = READINGS[0], ROWS[0]
    reworded = f"{reading.n} {reading.src} to {reading.dst}"  # an off-grid conversion, asked in training
    assert reader.read_question(reworded) == reading
    train = [["How many g are there per 3 kg?", 3000.0], [reworded, answer]]
    (tmp_path / "train.json").write_text(json.dumps(train))
    for split in ("valid", "reworded", "offgrid"):  # reading any of them would fail
        (tmp_path / f"{split}.json").write_text("not json")
    monkeypatch.setenv("HOMEWORK_DATA", str(tmp_path))
    sampled = []
    monkeypatch.setattr(datagen, "CoTModel", lambda checkpoint, calculator: SimpleNamespace(prompts_at_once=lambda: 64))
    monkeypatch.setattr(sampling, "run", lambda sample, questions, *a, **k: sampled.extend(questions) or {})
    datagen.generate_dataset(str(tmp_path / "rft.json"), oversample=2)
    assert sampled == [tuple(row) for row in train]
