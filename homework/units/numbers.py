"""Numbers: reading them as people write them ("1,500", "1 1/2", "1.5e-3", "two thousand", "three and a half") and
writing them as our rationales and answers do (`fmt`, `rounded`, `round_answer`).
"""

import math
import re
from decimal import Decimal

# A fraction (1/2) or a whole number and a fraction (1 1/2), an exponent (1.5e-3), then 1,500 or 2.5 or .75, but no
# part of another number
_NOT_PART_OF_A_NUMBER = (r"(?<![\w.,/])(", r")(?![\w.,/]?\d)")
_NOT_DECIMAL = r"\d+\s+\d+/\d+|\d+/\d+|(?:\d+(?:\.\d+)?|\.\d+)[eE][-+]?\d+"  # 1 1/2, 1/2, 1.5e-3
# The quantities that a model reads better as decimals (reader.plain_numbers)
NOT_DECIMAL = re.compile(_NOT_DECIMAL.join(_NOT_PART_OF_A_NUMBER))
# A number as a model writes one in a rationale or an answer: "6000", "1,000.5", ".25", "11592e-3"
NUMBER = r"(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?"
QUANTITY = re.compile((_NOT_DECIMAL + r"|\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+").join(_NOT_PART_OF_A_NUMBER))
# Quantities in words: "a", "twenty-five", "two thousand", "a dozen", "half a", "three quarters of an", "three and a
# half"
_ONES = ("zero one two three four five six seven eight nine ten "
         "eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen")
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety"
_WORD_VALUES = (
    {w: i for i, w in enumerate(_ONES.split())}
    | {w: 10 * i for i, w in enumerate(_TENS.split(), 2)}
    | {"a": 1, "an": 1}
)
_SCALES = {"dozen": 12, "hundred": 100, "thousand": 1000, "million": 1_000_000}
_FRACTIONS = {"half": 0.5, "halves": 0.5, "quarter": 0.25, "quarters": 0.25}
_WORD = "(?:" + "|".join([*_WORD_VALUES, *_SCALES, *_FRACTIONS, "and", "of"]) + ")"
WORDS_BEFORE = re.compile(
    rf"(?<![\w-]){_WORD}(?:[\s-]+{_WORD})*[\s-]*$", re.I
)  # a run of them ending where a unit starts
AND_FRACTION = re.compile(
    r"\s+and\s+((?:a|an|one|three)\s+(?:half|quarters?))\b", re.I
)  # "2 and a half", "an hour and a half"


def number(text: str) -> int | float | None:
    """The value of a number that QUANTITY matches: "1,500" 1500, "2.5" 2.5, "1.5e-3" 0.0015, "1 1/2" 1.5; None for
    "1/0"."""
    text = text.replace(",", "")
    if "/" not in text:
        return int(text) if text.isdigit() else float(text)
    *whole, fraction = text.split()
    top, bottom = map(int, fraction.split("/"))
    return int(whole[0] if whole else 0) + top / bottom if bottom else None


def integer_in_words(words: list[str]) -> int | None:
    """ "a" 1, "twenty five" 25, "two hundred and five" 205, "a dozen" 12, "two thousand" 2000; None if the words are
    no number."""
    total, current = 0, 0
    for before, word in zip([None, *words], words):
        if word in _WORD_VALUES:
            value = _WORD_VALUES[word]
            if current and not (
                current >= 20 and current % 10 == 0 and value < 10 or current % 100 == 0 and value < 100
            ):
                return None  # "five five", "twenty thirty"
            current += value
        elif word in ("dozen", "hundred"):
            current = (current or 1) * _SCALES[word]
        elif word in _SCALES:
            total, current = total + (current or 1) * _SCALES[word], 0
        elif not (word == "and" and before in _SCALES):  # "one hundred and five"
            return None
    return total + current


def fraction_in_words(words: list[str]) -> float | None:
    """ "half" 0.5, "a quarter" 0.25, "three quarters" 0.75; None otherwise."""
    *count, fraction = words
    n = integer_in_words(count) if count else 1
    return n * _FRACTIONS[fraction] if fraction in _FRACTIONS and n is not None else None


def words_value(words: list[str]) -> int | float | None:
    """The value of a quantity written in words (lower case, one word an item): "two thousand" 2000, "three and a
    half" 3.5, "half a" 0.5 (the article of "half a gallon"), "a quarter of an" 0.25; None if they are no number."""
    while (
        len(words) > 1 and words[-1] in ("a", "an", "of") and _FRACTIONS.keys() & set(words)
    ):  # "a quarter of an hour"
        words = words[:-1]
    if "and" in words and _FRACTIONS.keys() & set(words):  # "three and a half": a whole number, then a fraction
        at = len(words) - 1 - words[::-1].index("and")
        whole, fraction = (integer_in_words(words[:at]) if at else None), fraction_in_words(words[at + 1 :])
        return None if whole is None or fraction is None else whole + fraction
    return fraction_in_words(words) if words[-1] in _FRACTIONS else integer_in_words(words)


def fmt(x: float) -> str:
    """A number as a person writes it: no exponent, at most 6 significant digits, no trailing zeros."""
    if abs(x) >= 1e5:
        return str(round(x))
    text = f"{x:.{max(0, 5 - len(str(int(abs(x)))) + 1)}f}" if abs(x) >= 1 else f"{x:.6g}"
    return text.rstrip("0").rstrip(".") if "." in text and "e" not in text else text


def rounded(x: float, digits: int) -> float:
    """x to `digits` significant digits, whole numbers kept whole: 0.453592 -> 0.4536, 1609.34 -> 1609, 36525 ->
    36525."""
    if abs(x) < 1:
        return float(f"{x:.{digits}g}")
    return round(x, max(digits - len(str(int(abs(x)))), 0))


def round_answer(x: float) -> float:
    """Three significant digits: short to write, at most 0.5% off, well inside the 5% tolerance."""
    return x if x == 0 else round(x, 2 - math.floor(math.log10(abs(x))))


def shaped(n: float, digit: int) -> float:
    """n with its first digit replaced: shaped(8.5, 3) = 3.5, shaped(4000, 7) = 7000, shaped(1500, 2) = 2500."""
    exact = Decimal(repr(float(n)))
    place = Decimal(10) ** exact.adjusted()  # the place of the first digit
    return float(exact + (digit - int(exact / place)) * place)


def leading_digit(x: float) -> int:
    """The first significant digit: 7 for 7, 70 and 0.7; 1 for 10."""
    return int(f"{abs(x):e}"[0])
