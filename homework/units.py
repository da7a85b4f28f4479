"""Our own unit-conversion data: the spellings people write, the phrasings we ask in, a seeded generator.

Regenerate data/train.json and data/valid.json byte for byte:

    python -m homework.units

Every answer is computed by pint (imported only here, at generation time); nothing below is a
conversion factor. Each spelling maps to the pint expression it means.
"""
import json
import random
import re
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent.parent / "data"

# Order matters for `category`: a question is put in the first category whose spelling it contains,
# so the categories with compound spellings (m/s, cm^3, fluid ounce) come before the plain ones,
# and length (whose "in" is also an English word) comes last.
UNITS = {
    "digital storage": {
        "bit": "bit", "bits": "bit", "B": "byte", "byte": "byte", "bytes": "byte",
        "kB": "kilobyte", "KB": "kilobyte", "M": "megabyte", "MB": "megabyte",
        "G": "gigabyte", "GB": "gigabyte",
    },
    "speed": {
        "m/s": "meter / second", "km/h": "kilometer / hour", "kmh": "kilometer / hour",
        "mi/h": "mile / hour", "mph": "mile / hour", "ft/s": "foot / second", "in/s": "inch / second",
    },
    "volume": {
        "mL": "milliliter", "milliliter": "milliliter", "millilitre": "milliliter", "cc": "cc",
        "cm^3": "centimeter ** 3", "cm**3": "centimeter ** 3", "l": "liter", "L": "liter",
        "liter": "liter", "litre": "liter", "liters": "liter", "m^3": "meter ** 3", "m**3": "meter ** 3",
        "mm^3": "millimeter ** 3", "pint": "pint", "pints": "pint", "quart": "quart", "quarts": "quart",
        "gallon": "gallon", "gallons": "gallon", "fluid ounce": "fluid_ounce", "fluid ounces": "fluid_ounce",
    },
    "mass": {
        "g": "gram", "gram": "gram", "grams": "gram", "kg": "kilogram", "kilogram": "kilogram",
        "metric ton": "metric_ton", "tonne": "metric_ton", "tonnes": "metric_ton",
        "ounce": "ounce", "ounces": "ounce", "pound": "pound", "pounds": "pound",
    },
    "time": {
        "s": "second", "sec": "second", "second": "second", "seconds": "second",
        "min": "minute", "minute": "minute", "minutes": "minute", "h": "hour", "hour": "hour",
        "hours": "hour", "day": "day", "days": "day", "week": "week", "weeks": "week",
        "month": "month", "months": "month", "year": "year", "years": "year",
        "decade": "10 * year", "decades": "10 * year",  # pint's own "decade" is logarithmic
        "century": "century", "centuries": "century",
    },
    "length": {
        "mm": "millimeter", "cm": "centimeter", "m": "meter", "meter": "meter", "meters": "meter",
        "km": "kilometer", "in": "inch", "inch": "inch", "inches": "inch", "ft": "foot", "foot": "foot",
        "feet": "foot", "yd": "yard", "yard": "yard", "yards": "yard", "mi": "mile", "mile": "mile",
        "miles": "mile",
    },
}

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

_SPELLING_PATTERNS = {
    cat: re.compile("|".join(rf"(?<![\w'^*/]){re.escape(s)}(?![\w^*/])" for s in sorted(spellings, key=len, reverse=True)))
    for cat, spellings in UNITS.items()
}


def category(question: str) -> str:
    """The unit category a question asks about (see the ordering note on UNITS)."""
    for cat, pattern in _SPELLING_PATTERNS.items():
        if pattern.search(question):
            return cat
    return "unknown"


def _phrasing_pattern(phrasing: str) -> re.Pattern:
    pattern = re.escape(phrasing).replace(r"\{n\}", r"(?P<n>\d+)")
    return re.compile(pattern.replace(r"\{src\}", r"(?P<src>.+?)").replace(r"\{dst\}", r"(?P<dst>.+?)"))


_PHRASING_PATTERNS = [_phrasing_pattern(p) for p in PHRASINGS]


def parse_question(question: str) -> tuple[int, str, str] | None:
    """(n, src, dst) of a question written in one of our phrasings, or None."""
    for pattern in _PHRASING_PATTERNS:
        match = pattern.fullmatch(question.strip())
        if match and any(match["src"] in u and match["dst"] in u for u in UNITS.values()):
            return int(match["n"]), match["src"], match["dst"]
    return None


def unit_of(spelling: str) -> str:
    """The pint expression a spelling means ("kg" -> "kilogram"), so "kg" and "kilogram" compare equal."""
    return next(spellings[spelling] for spellings in UNITS.values() if spelling in spellings)


def convert(n: float, src: str, dst: str) -> float:
    """Convert n of spelling src into spelling dst with pint."""
    import pint

    global _UREG
    _UREG = _UREG or pint.UnitRegistry()
    (cat,) = [c for c, spellings in UNITS.items() if src in spellings and dst in spellings]
    ratio = n * _UREG(UNITS[cat][src]) / _UREG(UNITS[cat][dst])
    return float(ratio.to("dimensionless").magnitude)


_UREG = None


def make_rows(seed: int = 0, count: int = 2000) -> list[list]:
    """`count` distinct [question, answer] rows. Answers outside [0.01, 1e11] are skipped: rounded to
    3 decimals they would lose the precision the 5% check needs, or be absurd to ask."""
    rng = random.Random(seed)
    seen, rows = set(), []
    while len(rows) < count:
        cat = rng.choice(list(UNITS))
        src, dst = rng.sample(list(UNITS[cat]), 2)
        if UNITS[cat][src] == UNITS[cat][dst]:
            continue
        n = rng.randint(1, 10)
        question = rng.choice(PHRASINGS).format(n=n, src=src, dst=dst)
        answer = convert(n, src, dst)
        if question in seen or not 0.01 <= answer <= 1e11:
            continue
        seen.add(question)
        rows.append([question, answer])
    return rows


def main(seed: int = 0, size: int = 1000):
    """Write data/train.json and data/valid.json, `size` rows each, no question shared between them."""
    rows = make_rows(seed, 2 * size)
    for split, part in (("train", rows[:size]), ("valid", rows[size:])):
        path = DATA_DIR / f"{split}.json"
        path.write_text("[\n" + ",\n".join(json.dumps(row) for row in part) + "\n]\n")
        print(f"wrote {len(part)} rows to {path}")


if __name__ == "__main__":
    import fire

    fire.Fire(main)
