"""Our data sets, generated: seeded, so each file is rewritten byte for byte; every answer is pint's (`units.convert`).

    python -m homework.units.generator                 # data/train.json, valid.json, reworded.json and offgrid.json
    python -m homework.units.generator offgrid         # one of them (train and valid come together)

- train and valid (1000 rows each, no question shared): a unit pair of `units.UNITS` at a whole quantity from 1 to 10,
  asked in one of PHRASINGS.
- reworded (300): conversions asked the way people type them, in TEMPLATES that no training row uses, with any
  spelling the generators write (`units.WRITTEN`: "lbs", "fl oz", "kph"), at 1 to 10, halves and round thousands.
- offgrid (400): PHRASINGS at quantities that no row of data/train.json or data/rft.json asks for that unit pair, four
  kinds in turn (OFF_GRID: 3.7, 0.35, 1.75, 45): what a model scores there it computed, not recalled.

reworded and offgrid are for evaluation only: never trained on, never a worked example. For training only, `reword` asks
rows again in other words (SFT uses it) and `on_grid` asks each unit pair at the quantities of a grid.
"""

import json
import random
from decimal import Decimal

from . import table as units
from ..data import DATA_DIR, DataError, write_json
from .reader import Reading, read_question

PHRASINGS = [
    "How many {dst} are there per {n} {src}?",
    "Convert the measurement of {n} {src} into {dst}.",
    "Could you give the conversion from {src} to {dst} for {n} units?",
    "What does {n} {src} equal in {dst} terms?",
    "What is {n} {src} in {dst}?",
    "Express {n} {src} in {dst}.",
    "If I have {n} {src}, how many {dst} is that?",
    "{n} {src} is how many {dst}?",
    "Please turn {n} {src} into {dst}.",
    "How much is {n} {src} when measured in {dst}?",
    "Change {n} {src} to {dst}.",
    "What do you get when you convert {n} {src} to {dst}?",
    "Tell me the value of {n} {src} in {dst}.",
    "How many {dst} make up {n} {src}?",
    "Rewrite {n} {src} using {dst}.",
    "Give {n} {src} as a number of {dst}.",
    "Find the number of {dst} in {n} {src}.",
    "I measured {n} {src}. What is that in {dst}?",
    "Translate a quantity of {n} {src} to {dst}.",
    "Work out {n} {src} in units of {dst}.",
    "A value of {n} {src} corresponds to how many {dst}?",
    "Using {dst}, how would you write {n} {src}?",
]

TEMPLATES = [
    "{n} {src} to {dst}",
    "{n} {src} in {dst}",
    "{n} {src} in {dst}?",
    "convert {n} {src} to {dst}",
    "Convert {n} {src} into {dst} please",
    "how many {dst} in {n} {src}",
    "How many {dst} are in {n} {src}?",
    "How many {dst} is {n} {src}?",
    "how many {dst} per {n} {src}",
    "What's {n} {src} in {dst}",
    "whats {n} {src} in {dst}",
    "{n} {src} = ? {dst}",
    "{n} {src} equals how many {dst}",
    "{n} {src} -> {dst}",
    "Convert {src} to {dst}: {n}",
    "From {src} to {dst}: how much is {n}?",
    "I have {n} {src}. How many {dst} do I have?",
    "I've got {n} {src}, what's that in {dst}",
    "Can you convert {n} {src} to {dst}?",
    "Could you tell me how many {dst} are in {n} {src}?",
    "Please convert {n} {src} to {dst}.",
    "Quick question: {n} {src} in {dst}?",
    "{n} {src} converted to {dst} is what",
    "need {n} {src} in {dst}",
    "{n} {src} expressed in {dst}",
    "{n} {src} expressed as {dst}, please",
    "What would {n} {src} be in {dst}?",
    "What is the equivalent of {n} {src} in {dst}?",
    "Give me {n} {src} in {dst}",
    "show {n} {src} in {dst}",
    "How much is {n} {src} in {dst}?",
    "{n} {src} makes how many {dst}?",
    "How many {dst} does {n} {src} make?",
    "If something is {n} {src}, what is it in {dst}?",
    "{dst} in {n} {src}?",
    "{n}{src} to {dst}",
    "{n} {src}, in {dst}",
    "In {dst}, what is {n} {src}?",
    "What do {n} {src} come to in {dst}?",
    "what are {n} {src} in {dst}",
    "{n} {src} is equal to how many {dst}?",
    "How many {dst} would {n} {src} be?",
    "Roughly how many {dst} are there in {n} {src}?",
    "calculate {n} {src} in {dst}",
    "{n} {src} into {dst}",
    "Convert from {src} to {dst}: {n}",
    "Change {n} {src} over to {dst}",
    "what's the {dst} value of {n} {src}",
]

GRID = [*range(1, 11), *(i + 0.5 for i in range(10))]  # 1 to 10 and 0.5 to 9.5: the quantities people ask most
# Quantities off that grid, by kind: data/offgrid.json asks each unit pair at some of them
OFF_GRID = {
    "one decimal": [i / 10 for i in range(1, 100) if i % 5],  # 0.1 to 9.9, no halves
    "two decimals": [i / 100 for i in range(1, 1000) if i % 10 and i % 25],  # 0.01 to 9.99, no tenths or quarters
    "quarter": [i + q for i in range(10) for q in (0.25, 0.75)],
    "11 to 999": list(range(11, 1000)),
}
# How each generator draws its quantities: [(cumulative probability, draw)], and how often a thousand or more is
# written with a separator ("1,500")
AS_PEOPLE_ASK = [  # `reword`: mostly small integers, then decimals, tens and round thousands
    (0.45, lambda rng: rng.randint(1, 10)),
    (0.70, lambda rng: rng.choice([rng.randint(0, 9) + rng.choice([0.25, 0.5, 0.75]), round(rng.uniform(0.1, 10), 1)])),
    (0.85, lambda rng: rng.randint(11, 100)),
    (1.00, lambda rng: rng.randint(1, 9) * rng.choice([100, 1000]) + rng.choice([0, 0, 500])),
]
AS_TRAINED = [  # the reworded set: mostly what data/ asks, so that it measures the wording and not harder arithmetic
    (0.7, lambda rng: rng.randint(1, 10)),
    (0.9, lambda rng: rng.randint(0, 9) + 0.5),
    (1.0, lambda rng: rng.randint(2, 10) * 500),
]
SIZES = {"train": 1000, "valid": 1000, "reworded": 300, "offgrid": 400}


def quantity(rng: random.Random, kinds: list, separators: float) -> tuple[int | float, str]:
    """(value, as written): a draw from `kinds`; a thousand or more written "1,500" with probability `separators`."""
    kind = rng.random()
    n = next(draw for upto, draw in kinds if kind < upto)(rng)
    if n >= 1000 and (separators == 1 or rng.random() < separators):
        return n, f"{n:,}"
    return n, str(n)


def spellings(rng: random.Random, category: str, pair: tuple[str, str]) -> tuple[str, str]:
    """A written spelling of each of two units (pint expressions): "kilogram" may come out "kg" or "kilos"."""
    return tuple(rng.choice(units.WRITTEN_AS[category][unit]) for unit in pair)


def _phrased(rng: random.Random, count: int, quantity_of, keep=lambda question, n, src, dst: True) -> list[list]:
    """`count` distinct [question, answer] rows: a pair of spellings of `units.UNITS` (two units, not two spellings of
    one), asked at quantity_of(number of rows so far) in one of PHRASINGS, where `keep` allows and the answer is
    askable (`units.ANSWER_RANGE`)."""
    rows, seen = [], set()
    while len(rows) < count:
        cat = rng.choice(list(units.UNITS))
        src, dst = rng.sample(list(units.UNITS[cat]), 2)
        if units.UNITS[cat][src] == units.UNITS[cat][dst]:
            continue
        n = quantity_of(len(rows))
        question = rng.choice(PHRASINGS).format(n=n, src=src, dst=dst)
        if (
            question in seen
            or not keep(question, n, src, dst)
            or not units.askable(answer := units.convert(n, src, dst))
        ):
            continue
        seen.add(question)
        rows.append([question, answer])
    return rows


def train_and_valid(seed: int = 0, count: int = 2000) -> list[list]:
    """`count` distinct rows at whole quantities from 1 to 10: the first half train, the second valid."""
    rng = random.Random(seed)
    return _phrased(rng, count, lambda _: rng.randint(1, 10))


def conversions(paths: list) -> set[tuple[tuple[str, str], float]]:
    """(unit pair, quantity) of every row of these files that reads as a conversion."""
    rows = [row for path in paths if path.exists() for row in json.loads(path.read_text())]
    return {(reading.units, reading.n) for q, *_ in rows if (reading := read_question(q))}


def offgrid(seed: int = 0, count: int = SIZES["offgrid"]) -> list[list]:
    """`count` rows at quantities off the grid, the kinds of OFF_GRID in turn, none a conversion that a row of
    data/train.json or data/rft.json asks, each reading back as what it asks."""
    taken, kinds = conversions([DATA_DIR / "train.json", DATA_DIR / "rft.json"]), list(OFF_GRID)
    rng = random.Random(seed)

    def keep(question, n, src, dst):
        return (reading := read_question(question)) == Reading(n, src, dst) and (reading.units, n) not in taken

    return _phrased(rng, count, lambda i: rng.choice(OFF_GRID[kinds[i % len(kinds)]]), keep)


# `spread`: significant digits and the place of the first one; 0.035 to 9990, every digit length and decimal position
SPREAD_DIGITS = {1: 0.3, 2: 0.45, 3: 0.25}
SPREAD_PLACES = {-2: 0.05, -1: 0.15, 0: 0.35, 1: 0.2, 2: 0.15, 3: 0.1}


def spread_quantity(rng: random.Random) -> int | float:
    """A quantity of 1 to 3 significant digits, its first digit from the hundredths to the thousands: 0.035, 7.2,
    1.75, 45, 250, 6300."""
    digits = rng.choices(list(SPREAD_DIGITS), list(SPREAD_DIGITS.values()))[0]
    place = rng.choices(list(SPREAD_PLACES), list(SPREAD_PLACES.values()))[0]
    figures = [rng.randint(1, 9)] + [rng.randint(0, 9) for _ in range(digits - 2)] + [rng.randint(1, 9)] * (digits > 1)
    n = Decimal("".join(map(str, figures))).scaleb(place - digits + 1)
    return int(n) if n == n.to_integral_value() else float(n)


def spread(count: int, seed: int = 0, exclude: set = frozenset()) -> list[list]:
    """`count` distinct [question, answer] rows in PHRASINGS at `spread_quantity`s, none converting a (unit pair,
    quantity) of `exclude` (`conversions` of the evaluation sets), each reading back as what it asks. Training data."""
    rng = random.Random(seed)

    def keep(question, n, src, dst):
        return (reading := read_question(question)) == Reading(n, src, dst) and (reading.units, n) not in exclude

    return _phrased(rng, count, lambda _: spread_quantity(rng), keep)


def reworded(seed: int = 0, count: int = SIZES["reworded"]) -> list[list]:
    """`count` distinct [question, answer, the Reading it asks] rows in TEMPLATES, none a train or valid question."""
    taken = {q for split in ("train", "valid") for q, _ in json.loads((DATA_DIR / f"{split}.json").read_text())}
    rng = random.Random(seed)
    rows = []
    while len(rows) < count:
        cat = rng.choice(list(units.WRITTEN))
        src, dst = spellings(rng, cat, rng.sample(sorted(units.WRITTEN_AS[cat]), 2))
        n, written = quantity(rng, AS_TRAINED, separators=1)
        question = rng.choice(TEMPLATES).format(n=written, src=src, dst=dst)
        if question in taken or not units.askable(answer := units.convert(n, src, dst)):
            continue
        taken.add(question)
        rows.append([question, answer, Reading(n, src, dst)])
    return rows


def _asked(rng: random.Random, src: str, dst: str, n: int | float, text: str) -> str | None:
    """`text` (the quantity n) of src in dst, in one of PHRASINGS; None if it would not read back as that conversion."""
    question = rng.choice(PHRASINGS).format(n=text, src=src, dst=dst)
    return question if read_question(question) == Reading(n, src, dst) else None


def _scaled(answer: float, n: float, new_n: float) -> float:
    return float(f"{answer / n * new_n:.10g}")


def reword(rows: list[list], seed: int = 0, copies: int = 1) -> list[list]:
    """Each [question, answer] row asked again `copies` times: another of PHRASINGS, other spellings of its two units,
    another quantity (AS_PEOPLE_ASK). The answer scales with the quantity, so no converter is needed. A rewording must
    read back as the same conversion, or it is dropped. For training data only."""
    rng = random.Random(seed)
    out, seen = [], {q for q, _ in rows}
    for question, answer in rows:
        reading = read_question(question)
        if reading is None or not reading.n:
            continue
        for _ in range(copies):
            src, dst = spellings(rng, reading.category, reading.units)
            n, text = quantity(rng, AS_PEOPLE_ASK, separators=0.5)
            new, new_answer = _asked(rng, src, dst, n, text), _scaled(answer, reading.n, n)
            if new is None or new in seen or not units.askable(new_answer):
                continue
            seen.add(new)
            out.append([new, new_answer])
    return out


def on_grid(
    rows: list[list], quantities: list[int | float] = GRID, seed: int = 0, per_pair: int | None = None
) -> list[list]:
    """Every unit pair that `rows` convert, asked at each of `quantities` that none of its rows asks: in one of
    PHRASINGS with written spellings, the answer scaled from the pair's first row. The training rows ask a pair at two
    or three quantities, and RFT gets more of the conversions its data asks (in any words) than of those it has to
    multiply out afresh. For training data only.

    per_pair: ask each pair at only this many of those quantities, picked at random (seeded)."""
    rng = random.Random(seed)
    asked, first = set(), {}  # (units, n) that the rows ask; units -> (category, answer, n) of the pair's first row
    for question, answer in rows:
        if (reading := read_question(question)) and reading.n:
            asked.add((reading.units, reading.n))
            first.setdefault(reading.units, (reading.category, answer, reading.n))
    out = []
    for pair, (cat, answer, n) in first.items():
        unasked = [
            (new_n, new_answer)
            for new_n in quantities
            if (pair, new_n) not in asked and units.askable(new_answer := _scaled(answer, n, new_n))
        ]
        if per_pair is not None:
            unasked = sorted(rng.sample(unasked, min(per_pair, len(unasked))), key=unasked.index)
        for new_n, new_answer in unasked:
            if (question := _asked(rng, *spellings(rng, cat, pair), new_n, str(new_n))) is not None:
                out.append([question, new_answer])
    return out


def main(*splits: str, seed: int = 0, overwrite: bool = False):
    """Write the data sets named (train, valid, reworded, offgrid; all four if none), each in data/<split>.json.

    Args:
        seed: of the questions, their quantities and wordings
        overwrite: replace the data files that exist (without it, nothing is written if one does)"""
    splits = splits or tuple(SIZES)
    if unknown := set(splits) - set(SIZES):
        raise DataError(f"no split {', '.join(sorted(unknown))} (the splits are {', '.join(SIZES)})")
    if not overwrite and (there := [str(DATA_DIR / f"{s}.json") for s in splits if (DATA_DIR / f"{s}.json").exists()]):
        raise DataError(f"{', '.join(there)} {'exists' if len(there) == 1 else 'exist'}: pass --overwrite to replace")
    made = {}
    if {"train", "valid"} & set(splits):
        rows = train_and_valid(seed, SIZES["train"] + SIZES["valid"])
        made = {"train": rows[: SIZES["train"]], "valid": rows[SIZES["train"] :]}
    for split in ("train", "valid", "reworded", "offgrid"):  # in this order: reworded and offgrid read the others
        if split in splits:
            rows = made.get(split) or {"reworded": reworded, "offgrid": offgrid}[split](seed)
            write_json(DATA_DIR / f"{split}.json", [row[:2] for row in rows])
            print(f"wrote {len(rows)} rows to {DATA_DIR / split}.json")


if __name__ == "__main__":
    from ..cli import cli

    cli(main)
