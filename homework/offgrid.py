"""The off-grid evaluation set: our generator's conversions at quantities that no training row asks. For
evaluation only: never trained on, never a worked example.

    python -m homework.offgrid                      # rewrites data/offgrid.json byte for byte (seeded)
    python -m homework.rft test --split offgrid

The training data asks each unit pair at a few integers from 1 to 10 (data/train.json) and, in data/rft.json, at
every quantity 1 to 10, every half and some thousands: a model can score well there by recalling the products it
was trained on. Each question here asks a unit pair at a quantity that no row of either file asks that pair at, of
four kinds in turn (`units.OFF_GRID`): a decimal with one digit (3.7), a decimal with two (0.35), a quarter (1.75,
0.25) and a whole number from 11 to 999 (45, 250). `datagen --offgrid` asks the training pairs at others. The wording is the generator's own (`units.PHRASINGS`), so only the quantity
is new. Every answer is pint's.
"""
import json
import random

from . import units
from .data import DATA_DIR

KINDS = list(units.OFF_GRID)


def conversions(paths: list) -> set[tuple[tuple[str, str], float]]:
    """(unit pair, quantity) of every row of these files that reads as a conversion."""
    rows = [row for path in paths if path.exists() for row in json.loads(path.read_text())]
    return {(reading.units, reading.n) for q, *_ in rows if (reading := units.read_question(q))}


def make_rows(seed: int = 0, count: int = 400) -> list[list]:
    """`count` distinct [question, answer] rows, the kinds in turn; answers outside [0.01, 1e11] are skipped, as in
    the generator of data/."""
    taken = conversions([DATA_DIR / "train.json", DATA_DIR / "rft.json"])
    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < count:
        cat = rng.choice(list(units.UNITS))
        src, dst = rng.sample(list(units.UNITS[cat]), 2)
        if units.UNITS[cat][src] == units.UNITS[cat][dst]:
            continue  # two spellings of one unit
        n = rng.choice(units.OFF_GRID[KINDS[len(rows) % len(KINDS)]])
        question = rng.choice(units.PHRASINGS).format(n=n, src=src, dst=dst)
        reading = units.read_question(question)
        if reading != units.Reading(n, src, dst) or (reading.units, n) in taken or question in seen:
            continue  # a question that reads otherwise, or a conversion some training row asks
        if not 0.01 <= (answer := units.convert(n, src, dst)) <= 1e11:
            continue
        seen.add(question)
        rows.append([question, answer])
    return rows


def main(seed: int = 0, count: int = 400):
    path = DATA_DIR / "offgrid.json"
    path.write_text("[\n" + ",\n".join(json.dumps(row) for row in make_rows(seed, count)) + "\n]\n")
    print(f"wrote {count} rows to {path}")


if __name__ == "__main__":
    import fire

    fire.Fire(main)
