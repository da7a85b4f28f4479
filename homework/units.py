"""Units: the spellings people write, a reader for questions in any wording, and our seeded generator.

Regenerate data/train.json and data/valid.json byte for byte:

    python -m homework.units

Every answer is computed by pint (imported only here, at generation time); nothing below is a
conversion factor. Each spelling maps to the pint expression it means.
"""
import json
import random
import re
import sys
from pathlib import Path
from typing import NamedTuple

DATA_DIR = Path(__file__).resolve().parent.parent / "data"

# The generator's table: the spellings it writes, each mapped to the pint expression it means. Its order
# and content fix data/train.json and data/valid.json byte for byte; the reader knows more (SPELLINGS).
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

# Spellings people write that the generator doesn't. Ounces are mass and fluid ounces both: the other
# unit of a question decides which. "ton" is the metric ton, as it is read in metric settings.
MORE_SPELLINGS = {
    "digital storage": {
        "kb": "kilobyte", "kilobyte": "kilobyte", "kilobytes": "kilobyte", "mb": "megabyte",
        "megabyte": "megabyte", "megabytes": "megabyte", "gb": "gigabyte", "gigabyte": "gigabyte",
        "gigabytes": "gigabyte",
    },
    "speed": {
        "kph": "kilometer / hour", "kmph": "kilometer / hour", "km/hr": "kilometer / hour",
        "kilometer per hour": "kilometer / hour", "kilometers per hour": "kilometer / hour",
        "kilometre per hour": "kilometer / hour", "kilometres per hour": "kilometer / hour",
        "mi/hr": "mile / hour", "mile per hour": "mile / hour", "miles per hour": "mile / hour",
        "miles an hour": "mile / hour", "m/sec": "meter / second", "meter per second": "meter / second",
        "meters per second": "meter / second", "metre per second": "meter / second",
        "metres per second": "meter / second", "ft/sec": "foot / second", "fps": "foot / second",
        "foot per second": "foot / second", "feet per second": "foot / second",
        "inch per second": "inch / second", "inches per second": "inch / second",
    },
    "volume": {
        "ml": "milliliter", "milliliters": "milliliter", "millilitres": "milliliter",
        "cm3": "centimeter ** 3", "cm³": "centimeter ** 3", "cubic centimeter": "centimeter ** 3",
        "cubic centimeters": "centimeter ** 3", "cubic centimetre": "centimeter ** 3",
        "cubic centimetres": "centimeter ** 3", "litres": "liter", "m3": "meter ** 3", "m³": "meter ** 3",
        "cubic meter": "meter ** 3", "cubic meters": "meter ** 3", "cubic metre": "meter ** 3",
        "cubic metres": "meter ** 3", "mm3": "millimeter ** 3", "mm³": "millimeter ** 3",
        "cubic millimeter": "millimeter ** 3", "cubic millimeters": "millimeter ** 3",
        "cubic millimetre": "millimeter ** 3", "cubic millimetres": "millimeter ** 3", "pt": "pint",
        "qt": "quart", "gal": "gallon", "fl oz": "fluid_ounce", "fl. oz": "fluid_ounce",
        "fl. oz.": "fluid_ounce", "fluid oz": "fluid_ounce", "ounce": "fluid_ounce",
        "ounces": "fluid_ounce", "oz": "fluid_ounce",
    },
    "mass": {
        "gramme": "gram", "grammes": "gram", "kgs": "kilogram", "kilograms": "kilogram", "kilo": "kilogram",
        "kilos": "kilogram", "ton": "metric_ton", "tons": "metric_ton", "metric tons": "metric_ton",
        "metric tonne": "metric_ton", "metric tonnes": "metric_ton", "oz": "ounce", "lb": "pound", "lbs": "pound",
    },
    "time": {
        "secs": "second", "mins": "minute", "hr": "hour", "hrs": "hour", "wk": "week", "wks": "week",
        "yr": "year", "yrs": "year",
    },
    "length": {
        "metre": "meter", "metres": "meter", "kilometer": "kilometer", "kilometers": "kilometer",
        "kilometre": "kilometer", "kilometres": "kilometer", "centimeter": "centimeter",
        "centimeters": "centimeter", "centimetre": "centimeter", "centimetres": "centimeter",
        "millimeter": "millimeter", "millimeters": "millimeter", "millimetre": "millimeter",
        "millimetres": "millimeter", "yds": "yard",
    },
}

# The spellings our generators write from ({category: {spelling: pint expression}}): `reword` and
# homework/reworded.py. Fixed, so that the data they made stays reproducible.
WRITTEN = {cat: {**UNITS[cat], **MORE_SPELLINGS[cat]} for cat in UNITS}


def _composed_speeds() -> dict[str, str]:
    """Each speed of the table as people compose it from the written spellings of a length and a time:
    "miles/hour", "km per hr", "metres a second", "inches/sec". Only the five pairs of the table: "km/s" stays unknown."""

    def written(cat: str, unit: str) -> list[str]:
        return [spelling for spelling, expression in WRITTEN[cat].items() if expression == unit]

    composed = {}
    for length, time in (("foot", "second"), ("inch", "second"), ("kilometer", "hour"), ("meter", "second"), ("mile", "hour")):
        for l in written("length", length):
            for t in written("time", time):
                composed[f"{l}/{t}"] = composed[f"{l} per {t}"] = f"{length} / {time}"
            if l not in ("m", "in"):  # "miles an hour", "km an hour", "metres a second"; not "m a second"
                composed[f"{l} {'an' if time == 'hour' else 'a'} {time}"] = f"{length} / {time}"
    return composed


# Spellings the reader knows but the generators never write (adding them to WRITTEN would change the data they made).
READ_ONLY = {"volume": {"mm**3": "millimeter ** 3", "cubic mm": "millimeter ** 3", "cubic cm": "centimeter ** 3", "cubic m": "meter ** 3"}}
# What the reader knows: the written spellings, speeds composed as people write them, and READ_ONLY.
SPELLINGS = {cat: {**table, **(_composed_speeds() if cat == "speed" else {}), **READ_ONLY.get(cat, {})} for cat, table in WRITTEN.items()}
_MEANINGS = {}  # spelling -> {category: pint expression}; most spellings have one category, "ounce" two
for _cat, _spellings in SPELLINGS.items():
    for _spelling, _expression in _spellings.items():
        _MEANINGS.setdefault(_spelling, {})[_cat] = _expression


def _case_insensitive(spelling: str) -> bool:
    """Whether any capitalisation of `spelling` means the same ("KG", "Feet"). Not when another spelling
    differs from it only in case and means something else ("m" meter, "M" megabyte), and never for "in",
    which is a word first ("In 3 ft, ...")."""
    same_letters = [s for s in _MEANINGS if s.lower() == spelling.lower()]
    return spelling != "in" and all(_MEANINGS[s] == _MEANINGS[spelling] for s in same_letters)


_BY_LOWER = {s.lower(): s for s in _MEANINGS if _case_insensitive(s)}
# One alternation, longest spelling first so "fluid ounce" wins over "ounce" and "cm^3" over "cm". A
# spelling stands alone: no letter (or ', ^, *, /) just before it and no letter, digit, ^, * or / after it.
# Digits may come before it ("6kg"); spaces inside it may be any run of whitespace.
_UNIT = re.compile(
    r"(?<![^\W\d])(?<!['^*/])(?:"
    + "|".join(
        ("(?i:{})" if _case_insensitive(s) else "{}").format(r"\s+".join(map(re.escape, s.split())))
        for s in sorted(_MEANINGS, key=len, reverse=True)
    )
    + r")(?![\w^*/])"
)
# A fraction (1/2) or a whole number and a fraction (1 1/2), an exponent (1.5e-3), then 1,500 or 2.5 or .75, but no
# part of another number
_NOT_PART_OF_A_NUMBER = (r"(?<![\w.,/])(", r")(?![\w.,/]?\d)")
_NOT_DECIMAL = r"\d+\s+\d+/\d+|\d+/\d+|(?:\d+(?:\.\d+)?|\.\d+)[eE][-+]?\d+"  # 1 1/2, 1/2, 1.5e-3
# The quantities that a model reads better as decimals (cot.plain_numbers)
NOT_DECIMAL = re.compile(_NOT_DECIMAL.join(_NOT_PART_OF_A_NUMBER))
_QUANTITY = re.compile((_NOT_DECIMAL + r"|\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+").join(_NOT_PART_OF_A_NUMBER))
# Quantities in words: "a", "twenty-five", "two thousand", "a dozen", "half a", "three quarters of an", "three and a half"
_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen"
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety"
_WORD_VALUES = {w: i for i, w in enumerate(_ONES.split())} | {w: 10 * i for i, w in enumerate(_TENS.split(), 2)} | {"a": 1, "an": 1}
_SCALES = {"dozen": 12, "hundred": 100, "thousand": 1000, "million": 1_000_000}
_FRACTIONS = {"half": 0.5, "halves": 0.5, "quarter": 0.25, "quarters": 0.25}
_WORD = "(?:" + "|".join([*_WORD_VALUES, *_SCALES, *_FRACTIONS, "and", "of"]) + ")"
_WORDS_BEFORE = re.compile(rf"(?<![\w-]){_WORD}(?:[\s-]+{_WORD})*[\s-]*$", re.I)  # a run of them ending where a unit starts
_AND_FRACTION = re.compile(r"\s+and\s+((?:a|an|one|three)\s+(?:half|quarters?))\b", re.I)  # "2 and a half", "an hour and a half"
# Words before "in" that make it the inch: "how many in", "a quantity of in", "ft to in", "5 ft in in".
_BEFORE_INCH = {"many", "much", "of", "to", "into", "in", "using", "from", "convert"}
# A length raised to a power by a word before it: "square feet", "sq. km", "cubic inches", "cu ft" (the table's
# own "cubic meter" is one spelling, matched whole). An area, or a volume the table lacks: not that length.
_POWER_WORDS = {"square", "sq", "cubic", "cu"}


class Mention(NamedTuple):
    start: int
    end: int
    spelling: str  # the table's own spelling: "Kilograms" is read as "kilograms"


class Reading(NamedTuple):
    """What a question asks: convert `n` of spelling `src` into spelling `dst`."""

    n: int | float
    src: str
    dst: str

    @property
    def category(self) -> str:
        return pair_category(self.src, self.dst)

    @property
    def units(self) -> tuple[str, str]:
        """The pint expressions of src and dst, so "kg" and "kilogram" compare equal."""
        return SPELLINGS[self.category][self.src], SPELLINGS[self.category][self.dst]


def pair_category(src: str, dst: str) -> str | None:
    """The category that has both spellings (the first in table order if two do, as for "oz" and "ounce")."""
    return next((cat for cat in _MEANINGS.get(src, {}) if cat in _MEANINGS.get(dst, {})), None)


def _mentions(question: str) -> list[Mention]:
    found = []
    for match in _UNIT.finditer(question):
        text = " ".join(match.group().split())
        found.append(Mention(match.start(), match.end(), text if text in _MEANINGS else _BY_LOWER[text.lower()]))
    return found


def _quantities(question: str, mentions: list[Mention]) -> list[tuple[int, int, int | float]]:
    """(start, end, value) of every number written in digits outside a unit ("cm^3" holds no quantity)."""
    masked = list(question)
    for m in mentions:
        masked[m.start : m.end] = " " * (m.end - m.start)
    masked, found = "".join(masked), []
    for match in _QUANTITY.finditer(masked):
        if (value := number(match.group())) is not None:
            end = match.end()
            if and_fraction := _AND_FRACTION.match(masked, end):  # "2 and a half kg"
                value, end = value + _fraction_in_words(and_fraction.group(1).lower().split()), and_fraction.end()
            found.append((match.start(), end, value))
    return found


def _integer_in_words(words: list[str]) -> int | None:
    """"a" 1, "twenty five" 25, "two hundred and five" 205, "a dozen" 12, "two thousand" 2000; None if the words are no number."""
    total, current = 0, 0
    for before, word in zip([None, *words], words):
        if word in _WORD_VALUES:
            value = _WORD_VALUES[word]
            if current and not (current >= 20 and current % 10 == 0 and value < 10 or current % 100 == 0 and value < 100):
                return None  # "five five", "twenty thirty"
            current += value
        elif word in ("dozen", "hundred"):
            current = (current or 1) * _SCALES[word]
        elif word in _SCALES:
            total, current = total + (current or 1) * _SCALES[word], 0
        elif not (word == "and" and before in _SCALES):  # "one hundred and five"
            return None
    return total + current


def _fraction_in_words(words: list[str]) -> float | None:
    """"half" 0.5, "a quarter" 0.25, "three quarters" 0.75; None otherwise."""
    *count, fraction = words
    n = _integer_in_words(count) if count else 1
    return n * _FRACTIONS[fraction] if fraction in _FRACTIONS and n is not None else None


def _words_value(words: list[str]) -> int | float | None:
    """The value of a quantity written in words (lower case, one word an item): "two thousand" 2000, "three and a
    half" 3.5, "half a" 0.5 (the article of "half a gallon"), "a quarter of an" 0.25; None if they are no number."""
    while len(words) > 1 and words[-1] in ("a", "an", "of") and _FRACTIONS.keys() & set(words):  # "a quarter of an hour"
        words = words[:-1]
    if "and" in words and _FRACTIONS.keys() & set(words):  # "three and a half": a whole number, then a fraction
        at = len(words) - 1 - words[::-1].index("and")
        whole, fraction = (_integer_in_words(words[:at]) if at else None), _fraction_in_words(words[at + 1 :])
        return None if whole is None or fraction is None else whole + fraction
    return _fraction_in_words(words) if words[-1] in _FRACTIONS else _integer_in_words(words)


def _quantities_in_words(question: str, mentions: list[Mention]) -> list[tuple[int, int, int | float]]:
    """(start, end, value) of each quantity in words right before a unit: "in a kilogram", "two thousand metres", "half
    a gallon". The longest run of words that reads as a number, so "the weight of a pound" is 1."""
    found = []
    for m in mentions:
        if run := _WORDS_BEFORE.search(question[: m.start]):
            words = list(re.finditer(r"[A-Za-z]+", run.group()))
            for i, first in enumerate(words):
                if (value := _words_value([w.group().lower() for w in words[i:]])) is not None:
                    found.append((run.start() + first.start(), run.start() + words[-1].end(), value))
                    break
    return found


def number(text: str) -> int | float | None:
    """The value of a number that _QUANTITY matches: "1,500" 1500, "2.5" 2.5, "1.5e-3" 0.0015, "1 1/2" 1.5; None for "1/0"."""
    text = text.replace(",", "")
    if "/" not in text:
        return int(text) if text.isdigit() else float(text)
    *whole, fraction = text.split()
    top, bottom = map(int, fraction.split("/"))
    return int(whole[0] if whole else 0) + top / bottom if bottom else None


def _adjacent(question: str, end: int, start: int) -> bool:
    """Only spaces (or a hyphen: "5-kg") between a quantity that ends at `end` and a unit at `start`."""
    return 0 <= start - end and re.fullmatch(r"\s*-?\s*", question[end:start]) is not None


def _word_before(question: str, start: int) -> str:
    words = re.findall(r"[A-Za-z]+", question[:start])
    return words[-1].lower() if words else ""


def _restates(question: str, first: Mention, second: Mention) -> bool:
    """`second` is `first` again, in brackets right after it: "9 ounces (oz)", "4 gallons (gal)"."""
    bracketed = re.fullmatch(r"\s*\(\s*", question[first.end : second.start]) and re.match(r"\s*\)", question[second.end :])
    return bool(bracketed) and bool(_MEANINGS[first.spelling].items() & _MEANINGS[second.spelling].items())


def _source(question: str, units: list[Mention]) -> Mention:
    """The source unit when no quantity counts one: "from X to Y" is X; "how many X ... Y" is Y; else the first."""
    after_from = [m for m in units if _word_before(question, m.start) == "from"]
    asked = {m.spelling for m in units if re.search(r"\bhow\s+(?:many|much)\s*$", question[: m.start], re.I)}
    return (after_from or [m for m in units if asked and m.spelling not in asked] or units)[0]


def read_with_span(question: str) -> tuple[Reading, tuple[int, int]] | None:
    """(reading, (start, end) of the quantity in the question), or None: see read_question."""
    if not isinstance(question, str):
        return None
    mentions = _mentions(question)
    if any(_word_before(question, m.start) in _POWER_WORDS for m in mentions):  # "2 square meters in square feet": no length question
        return None
    if any(_AND_FRACTION.match(question, m.end) for m in mentions):  # "an hour and a half": the quantity has a unit inside
        return None
    quantities = _quantities(question, mentions) or _quantities_in_words(question, mentions)  # words only right before a unit

    def is_unit(m: Mention) -> bool:
        if m.spelling != "in":
            return True
        counted = any(_adjacent(question, e, m.start) for _, e, _ in quantities)
        last = re.fullmatch(r"[\s.?!]*", question[m.end :]) is not None  # "5 ft -> in", "What is 5 ft in in?"
        # "in" right before a quantity or another unit is the preposition: "come to in years", "of in in 5 ft"
        followed = any(_adjacent(question, m.end, s) for s, _, _ in quantities) or any(
            _adjacent(question, m.end, o.start) for o in mentions if o.spelling != "in")
        return counted or last or (_word_before(question, m.start) in _BEFORE_INCH and not followed)

    units = [m for m in mentions if is_unit(m)]
    units = [m for i, m in enumerate(units) if not (i and _restates(question, units[i - 1], m))]  # "9 ounces (oz)"
    if len({m.spelling for m in units}) != 2:
        return None
    counted = [(q, m) for q in quantities for m in units if _adjacent(question, q[1], m.start)]
    if len({m.spelling for _, m in counted}) > 1:  # "Is 10 s more than 1 min?", "2 ft 3 in": no one quantity
        return None
    if counted:
        (start, end, n), src = counted[0]
    elif len(quantities) == 1:
        (start, end, n), src = quantities[0], _source(question, units)
    else:
        return None
    dst = next(m for m in units if m.spelling != src.spelling)
    if pair_category(src.spelling, dst.spelling) is None:
        return None
    return Reading(n, src.spelling, dst.spelling), (start, end)


def read_question(question: str) -> Reading | None:
    """(quantity, source spelling, target spelling) of a conversion question in any wording, or None.

    The quantity is written in digits ("6", "2.5", "1,500", "1 1/2", "2 and a half") or, right before its unit, in
    words ("a", "twenty-five", "two thousand", "half a", "three and a half"). The units are any spellings of
    SPELLINGS, wherever they stand; the source is the unit the quantity counts ("How many inches in 3 feet?":
    feet), else the one after "from", else the one that "how many" does not ask for, else the first. None when
    the question has no single quantity ("an hour and a half" has its unit inside), not exactly two units, two
    units that no one category has, or a length squared or cubed in words ("square feet"). Never raises."""
    read = read_with_span(question)
    return read and read[0]


def readable(rows: list, stage: str) -> list[tuple[list, Reading, tuple[int, int]]]:
    """(row, reading, the quantity's span) for the rows whose question (row[0]) reads as a conversion of a
    non-zero quantity. Prints how many were skipped, so data in other wordings never fails silently or
    crashes a stage."""
    kept = [(row, *read) for row in rows if (read := read_with_span(row[0])) and read[0].n]
    if len(kept) < len(rows):
        print(f"{stage}: skipped {len(rows) - len(kept)} of {len(rows)} rows whose question does not read as a conversion", file=sys.stderr)
    return kept


def unit_name(expression: str) -> str:
    """One name for a unit, whatever spelling a question used: "kilogram" for kg, kilos and kgs; "cubic
    centimeter" for cc and cm^3; "mile per hour" for mph and miles/hour."""
    named = {"cc": "cubic centimeter", "10 * year": "decade"}  # pint's cc is the cubic centimeter
    if expression in named:
        return named[expression]
    name = expression.removesuffix(" ** 3").replace("_", " ").replace(" / ", " per ")
    return f"cubic {name}" if expression.endswith(" ** 3") else name


def category(question: str) -> str:
    """The unit category a question asks about, or "unknown" if it doesn't read."""
    reading = read_question(question)
    return reading.category if reading else "unknown"


def convert(n: float, src: str, dst: str) -> float:
    """Convert n of spelling src into spelling dst with pint."""
    import pint

    global _UREG
    _UREG = _UREG or pint.UnitRegistry()
    cat = pair_category(src, dst)
    ratio = n * _UREG(SPELLINGS[cat][src]) / _UREG(SPELLINGS[cat][dst])
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


def _quantity(rng: random.Random) -> tuple[int | float, str]:
    """A quantity as people write one: mostly small integers, then decimals, tens and round thousands
    (with or without a thousands separator). (value, text)."""
    kind = rng.random()
    if kind < 0.45:
        n = rng.randint(1, 10)
    elif kind < 0.70:
        n = rng.choice([rng.randint(0, 9) + rng.choice([0.25, 0.5, 0.75]), round(rng.uniform(0.1, 10), 1)])
    elif kind < 0.85:
        n = rng.randint(11, 100)
    else:
        n = rng.randint(1, 9) * rng.choice([100, 1000]) + rng.choice([0, 0, 500])
        if n >= 1000 and rng.random() < 0.5:
            return n, f"{n:,}"
    return n, str(n)


def _spellings(rng: random.Random, category: str, units: tuple[str, str]) -> tuple[str, str]:
    """A spelling of each of the two units, picked from WRITTEN ("kg" may become "kilos")."""
    table = WRITTEN[category]
    return tuple(rng.choice([s for s, e in table.items() if e == unit]) for unit in units)


def _asked(rng: random.Random, src: str, dst: str, n: int | float, text: str) -> str | None:
    """`text` (the quantity n) of src in dst, in one of the generator's PHRASINGS; None if it would not read back
    as that conversion."""
    question = rng.choice(PHRASINGS).format(n=text, src=src, dst=dst)
    return question if read_question(question) == Reading(n, src, dst) else None


def _scaled(answer: float, n: float, new_n: float) -> float:
    return float(f"{answer / n * new_n:.10g}")


def reword(rows: list[list], seed: int = 0, copies: int = 1) -> list[list]:
    """Each [question, answer] row asked again `copies` times: another of the generator's PHRASINGS, other
    spellings of its two units, another quantity (`_quantity`). The answer scales with the quantity, so no
    converter is needed. A rewording must read back as the same conversion (`read_question`), or it is
    dropped. For training data only: the evaluation sets keep their own wordings."""
    rng = random.Random(seed)
    out, seen = [], {q for q, _ in rows}
    for question, answer in rows:
        reading = read_question(question)
        if reading is None or not reading.n:
            continue
        for _ in range(copies):
            src, dst = _spellings(rng, reading.category, reading.units)
            n, text = _quantity(rng)
            new, new_answer = _asked(rng, src, dst, n, text), _scaled(answer, reading.n, n)
            if new is None or new in seen or not 0.01 <= new_answer <= 1e11:
                continue
            seen.add(new)
            out.append([new, new_answer])
    return out


GRID = [*range(1, 11), *(i + 0.5 for i in range(10))]  # 1 to 10 and 0.5 to 9.5: the quantities people ask most
THOUSANDS = [500 * i for i in range(2, 20)]  # 1000 to 9500: "1,500 ft", counted in thousands in the prompt
# Quantities off that grid, by kind: data/offgrid.json asks each unit pair at some of them, `datagen --offgrid` at others
OFF_GRID = {
    "one decimal": [i / 10 for i in range(1, 100) if i % 5],  # 0.1 to 9.9, no halves
    "two decimals": [i / 100 for i in range(1, 1000) if i % 10 and i % 25],  # 0.01 to 9.99, no tenths or quarters
    "quarter": [i + q for i in range(10) for q in (0.25, 0.75)],
    "11 to 999": list(range(11, 1000)),
}


def on_grid(rows: list[list], quantities: list[int | float] = GRID, seed: int = 0, per_pair: int | None = None) -> list[list]:
    """Every unit pair that `rows` convert, asked at each of `quantities` that none of its rows asks: in one of
    the generator's PHRASINGS with spellings from WRITTEN, the answer scaled from the pair's first row. The
    training rows ask a pair at two or three quantities; RFT gets about 0.95 of the conversions its data asks
    (in any words), against 0.55 to 0.85 of those it has to multiply out afresh (docs/EXPERIMENTS.md). For
    training data only, like `reword`.

    per_pair: ask each pair at only this many of those quantities, picked at random (seeded)."""
    rng = random.Random(seed)
    asked, first = set(), {}  # (units, n) that the rows ask; units -> (category, answer, n) of the pair's first row
    for question, answer in rows:
        if (reading := read_question(question)) and reading.n:
            asked.add((reading.units, reading.n))
            first.setdefault(reading.units, (reading.category, answer, reading.n))
    out = []
    for units, (cat, answer, n) in first.items():
        unasked = [(new_n, new_answer) for new_n in quantities
                   if (units, new_n) not in asked and 0.01 <= (new_answer := _scaled(answer, n, new_n)) <= 1e11]
        if per_pair is not None:
            unasked = sorted(rng.sample(unasked, min(per_pair, len(unasked))), key=unasked.index)
        for new_n, new_answer in unasked:
            if (question := _asked(rng, *_spellings(rng, cat, units), new_n, str(new_n))) is not None:
                out.append([question, new_answer])
    return out


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
