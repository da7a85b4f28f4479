import collections
import json

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


def test_no_training_row_asks_an_off_grid_conversion():
    trained = generator.conversions([DATA_DIR / "train.json", DATA_DIR / "rft.json"])
    assert len(trained) > 2000  # both files were read (distinct conversions)
    assert not {(r.units, r.n) for r in READINGS} & trained
    assert not {n for r in READINGS for n in [r.n] if n in generator.GRID or n in generator.THOUSANDS}


def test_the_kinds_come_in_turn():
    kinds = [quantity_kind(q) for q, _ in ROWS]
    assert collections.Counter(kinds[:100]) == {"decimal": 50, "quarter": 25, "11 to 999": 25}
    two_digits = [r.n for r in READINGS[1::4]]
    assert all(round(n, 2) == n != round(n, 1) for n in two_digits)


def test_datagen_never_asks_an_off_grid_conversion(tmp_path, monkeypatch):
    # A training row that asks an off-grid conversion, in other words, is not sampled.
    reading, (_, answer) = READINGS[0], ROWS[0]
    reworded = f"{reading.n} {reading.src} to {reading.dst}"
    assert reader.read_question(reworded) == reading
    train = [["How many g are there per 3 kg?", 3000.0], [reworded, answer]]
    (tmp_path / "train.json").write_text(json.dumps(train))
    (tmp_path / "valid.json").write_text(json.dumps([["How many m are there per 2 km?", 2000.0]]))
    monkeypatch.setenv("HOMEWORK_DATA", str(tmp_path))
    sampled = []
    monkeypatch.setattr(datagen, "CoTModel", lambda checkpoint, calculator: "the CoT model")
    monkeypatch.setattr(sampling, "run", lambda sample, questions, *a, **k: sampled.extend(questions) or {})
    datagen.generate_dataset(str(tmp_path / "rft.json"), oversample=2, spread=0)
    assert sampled == [tuple(train[0])]
