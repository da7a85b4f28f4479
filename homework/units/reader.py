"""The question reader: what conversion a question asks, in any wording ("How many inches in 3 feet?", "3 ft -> in",
"two and a half kilos in lbs"), as (quantity, source spelling, target spelling); and the question with its numbers
made plain, as the prompts give it to the model.
"""

import re
import sys
from typing import NamedTuple

from .numbers import AND_FRACTION, NOT_DECIMAL, QUANTITY, WORDS_BEFORE, fmt, fraction_in_words, number, words_value
from .table import MEANINGS, SPELLINGS, pair_category


def _case_insensitive(spelling: str) -> bool:
    """Whether any capitalisation of `spelling` means the same ("KG", "Feet"). Not when another spelling
    differs from it only in case and means something else ("m" meter, "M" megabyte), and never for "in",
    which is a word first ("In 3 ft, ...")."""
    same_letters = [s for s in MEANINGS if s.lower() == spelling.lower()]
    return spelling != "in" and all(MEANINGS[s] == MEANINGS[spelling] for s in same_letters)


_BY_LOWER = {s.lower(): s for s in MEANINGS if _case_insensitive(s)}
# One alternation, longest spelling first so "fluid ounce" wins over "ounce" and "cm^3" over "cm". A
# spelling stands alone: no letter (or ', ^, *, /) just before it and no letter, digit, ^, * or / after it.
# Digits may come before it ("6kg"); spaces inside it may be any run of whitespace.
_UNIT = re.compile(
    r"(?<![^\W\d])(?<!['^*/])(?:"
    + "|".join(
        ("(?i:{})" if _case_insensitive(s) else "{}").format(r"\s+".join(map(re.escape, s.split())))
        for s in sorted(MEANINGS, key=len, reverse=True)
    )
    + r")(?![\w^*/])"
)


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


def _mentions(question: str) -> list[Mention]:
    found = []
    for match in _UNIT.finditer(question):
        text = " ".join(match.group().split())
        found.append(Mention(match.start(), match.end(), text if text in MEANINGS else _BY_LOWER[text.lower()]))
    return found


def _quantities(question: str, mentions: list[Mention]) -> list[tuple[int, int, int | float]]:
    """(start, end, value) of every number written in digits outside a unit ("cm^3" holds no quantity)."""
    masked = list(question)
    for m in mentions:
        masked[m.start : m.end] = " " * (m.end - m.start)
    masked, found = "".join(masked), []
    for match in QUANTITY.finditer(masked):
        if (value := number(match.group())) is not None:
            end = match.end()
            if and_fraction := AND_FRACTION.match(masked, end):  # "2 and a half kg"
                value, end = value + fraction_in_words(and_fraction.group(1).lower().split()), and_fraction.end()
            found.append((match.start(), end, value))
    return found


def _quantities_in_words(question: str, mentions: list[Mention]) -> list[tuple[int, int, int | float]]:
    """(start, end, value) of each quantity in words right before a unit: "in a kilogram", "two thousand metres", "half
    a gallon". The longest run of words that reads as a number, so "the weight of a pound" is 1."""
    found = []
    for m in mentions:
        if run := WORDS_BEFORE.search(question[: m.start]):
            words = list(re.finditer(r"[A-Za-z]+", run.group()))
            for i, first in enumerate(words):
                if (value := words_value([w.group().lower() for w in words[i:]])) is not None:
                    found.append((run.start() + first.start(), run.start() + words[-1].end(), value))
                    break
    return found


def _adjacent(question: str, end: int, start: int) -> bool:
    """Only spaces (or a hyphen: "5-kg") between a quantity that ends at `end` and a unit at `start`."""
    return 0 <= start - end and re.fullmatch(r"\s*-?\s*", question[end:start]) is not None


def _word_before(question: str, start: int) -> str:
    words = re.findall(r"[A-Za-z]+", question[:start])
    return words[-1].lower() if words else ""


def _restates(question: str, first: Mention, second: Mention) -> bool:
    """`second` is `first` again, in brackets right after it: "9 ounces (oz)", "4 gallons (gal)"."""
    bracketed = re.fullmatch(r"\s*\(\s*", question[first.end : second.start]) and re.match(
        r"\s*\)", question[second.end :]
    )
    return bool(bracketed) and bool(MEANINGS[first.spelling].items() & MEANINGS[second.spelling].items())


def _source(question: str, units: list[Mention]) -> Mention:
    """The source unit when no quantity counts one: "from X to Y" is X; "how many X ... Y" is Y; else the first."""
    after_from = [m for m in units if _word_before(question, m.start) == "from"]
    asked = {m.spelling for m in units if re.search(r"\bhow\s+(?:many|much)\s*$", question[: m.start], re.I)}
    return (after_from or [m for m in units if asked and m.spelling not in asked] or units)[0]


def _is_unit(question: str, m: Mention, mentions: list[Mention], quantities: list) -> bool:
    """Whether a mention is a unit: every spelling is, but "in", which is the inch only where it counts a quantity,
    ends the question ("5 ft -> in", "What is 5 ft in in?") or follows a word that asks for a unit ("how many in")."""
    if m.spelling != "in":
        return True
    counted = any(_adjacent(question, e, m.start) for _, e, _ in quantities)
    last = re.fullmatch(r"[\s.?!]*", question[m.end :]) is not None
    # "in" right before a quantity or another unit is the preposition: "come to in years", "of in in 5 ft"
    followed = any(_adjacent(question, m.end, s) for s, _, _ in quantities) or any(
        _adjacent(question, m.end, o.start) for o in mentions if o.spelling != "in"
    )
    return counted or last or (_word_before(question, m.start) in _BEFORE_INCH and not followed)


def _units_and_quantities(question: str) -> tuple[list[Mention], list] | None:
    """The question's units (a restated one dropped: "9 ounces (oz)") and its quantities, or None when no quantity can
    be one conversion's: a length raised to a power ("2 square meters in square feet"), a quantity with a unit inside
    ("an hour and a half"). Quantities in words count only where no digits do, and only right before a unit."""
    mentions = _mentions(question)
    if any(_word_before(question, m.start) in _POWER_WORDS or AND_FRACTION.match(question, m.end) for m in mentions):
        return None
    quantities = _quantities(question, mentions) or _quantities_in_words(question, mentions)
    units = [m for m in mentions if _is_unit(question, m, mentions, quantities)]
    return [m for i, m in enumerate(units) if not (i and _restates(question, units[i - 1], m))], quantities


def read_with_span(question: str) -> tuple[Reading, tuple[int, int]] | None:
    """(reading, (start, end) of the quantity in the question), or None: see read_question."""
    found = _units_and_quantities(question) if isinstance(question, str) else None
    if found is None or len({m.spelling for m in found[0]}) != 2:
        return None
    units, quantities = found
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
        print(
            f"{stage}: skipped {len(rows) - len(kept)} of {len(rows)} rows "
            "whose question does not read as a conversion",
            file=sys.stderr,
        )
    return kept


def category(question: str) -> str:
    """The unit category a question asks about, or "unknown" if it doesn't read."""
    reading = read_question(question)
    return reading.category if reading else "unknown"


def plain_numbers(text: str) -> str:
    """Thousands separators dropped, fractions, exponents and a quantity in words written as decimals: "1,500 kg" ->
    "1500 kg", "1 1/2 hours" -> "1.5 hours", "1.5e-3 km" -> "0.0015 km", "two thousand metres" -> "2000 metres". The
    model reads "1,500" as 1 and then 500, and "1/2" as 1 and 2."""
    if (read := read_with_span(text)) and re.search("[A-Za-z]", text[slice(*read[1])]):
        text = with_quantity(text, read[1], read[0].n)
    text = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text)
    return NOT_DECIMAL.sub(lambda m: m.group() if (value := number(m.group())) is None else fmt(value), text)


def with_quantity(question: str, span: tuple[int, int], n: float) -> str:
    """The question with the quantity at `span` replaced by n."""
    start, end = span
    return question[:start] + fmt(n) + question[end:]
