"""The reasoning the RFT model learns to write, and the checks that datagen, GRPO and the miss counts share.

datagen keeps a sampled completion only if its answer is right and its first sentence states the true factor
(`states_the_factor`); what it keeps is that factor written out (`write`) in one of FORMS, and verified step by step
(`holds`). GRPO rewards a completion that is `consistent`; the miss counts (`miss_kind`) use `STATEMENT`.

    rounded: 1 mile = 1.61 kilometer. 7.2 * 1.61 = 11.6. <answer>11.6</answer>               (FORM, what RFT learns)
    plain:   1 mile = 1.609 kilometer. 7.2 * 1.609 = 11.5848. <answer>11.5848</answer>
    split:   1 mile = 1.61 kilometer. 7.2 * 1.61 = 7 * 1.61 + 0.2 * 1.61 = 11.27 + 0.322 = 11.592. <answer>11.592</answer>

scripts/pilot.py adds the forms only its pilots use; docs/RECIPE.md gives each form's scores.
"""

import math
import re
from decimal import Decimal

from .numbers import NUMBER, fmt
from .reader import Reading, read_question
from .table import unit_name

def plain(n: float, src: str, dst: str, factor: float) -> str:
    """The one-product form of the CoT prompt's examples: "1 mile = 1.609 kilometer. 7.2 * 1.609 = 11.5848."."""
    f = float(f"{factor:.4g}")
    return f"1 {src} = {fmt(f)} {dst}. {fmt(n)} * {fmt(f)} = {fmt(n * f)}. <answer>{fmt(n * f)}</answer>"


def dec(x: Decimal) -> str:
    """A Decimal as school writes it: no exponent, no trailing zeros (Decimal("1.20E+3") -> "1200")."""
    return format(x.normalize(), "f")


def split(n: float, src: str, dst: str, factor: float) -> str:
    """Goat's split of the quantity by place value, at the factor's 3 significant figures: each partial product is a
    digit times the factor, then the partials are added one at a time ("1 mile = 1.61 kilometer. 7.2 * 1.61 = 7 * 1.61
    + 0.2 * 1.61 = 11.27 + 0.322 = 11.592."). A one-digit quantity is one product, as in `plain`."""
    f, q = Decimal(f"{factor:.3g}"), Decimal(repr(float(n))).normalize()
    sign, digits, exponent = q.as_tuple()
    parts = [Decimal(d).scaleb(exponent + len(digits) - 1 - i) for i, d in enumerate(digits) if d]
    text = f"1 {src} = {dec(f)} {dst}. {dec(q)} * {dec(f)} = "
    if len(parts) > 1:
        partials = [p * f for p in parts]
        text += " + ".join(f"{dec(p)} * {dec(f)}" for p in parts) + " = " + " + ".join(map(dec, partials)) + " = "
        for k in range(1, len(partials) - 1):  # more than two terms: added one at a time
            text += " + ".join([dec(sum(partials[: k + 1]))] + [dec(x) for x in partials[k + 1 :]]) + " = "
    answer = dec(q * f)
    return text + f"{answer}. <answer>{answer}</answer>"


def rounded(n: float, src: str, dst: str, factor: float) -> str:
    """The one-product form, the factor and the product to 3 significant digits ("1 mile = 1.61 kilometer. 7.2 * 1.61 =
    11.6."): the leading digits, which decide the 5% tolerance (rounding both costs at most 1%), and no more."""
    f = float(f"{factor:.3g}")
    product = fmt(float(f"{n * f:.3g}"))
    return f"1 {src} = {fmt(f)} {dst}. {fmt(n)} * {fmt(f)} = {product}. <answer>{product}</answer>"


FORMS = {"plain": plain, "split": split, "rounded": rounded}
FORM = "rounded"  # what rft_data rewrites every row into and RFT learns; each form's runs: docs/RECIPE.md


def names(reading: Reading) -> tuple[str, str]:
    return tuple(map(unit_name, reading.units))


def write(reading: Reading, factor: float, form: str | None = None) -> str:
    """The reasoning for what `reading` asks, at `factor`, in `form` (none: FORM)."""
    return FORMS[form or FORM](reading.n, *names(reading), factor)


STATED = re.compile(rf"1 (.+?) = ({NUMBER}) ")  # our own opening: "1 mile = 1.609 kilometer. "


def stated_factor(text: str) -> float | None:
    """The factor a rationale opens with ("1 mile = 1.609 kilometer." or "1 mile = 161e-2 kilometer."), or None."""
    match = STATED.match(text.strip())
    return float(match.group(2).replace(",", "")) if match else None


def consistent(question: str, text: str, form: str | None = None) -> bool:
    """`text` is, character for character, the rationale of the question at the factor it states: each product,
    each sum and the answer hold (whether or not that factor is true)."""
    reading, factor = read_question(question), stated_factor(text)
    return (
        reading is not None and bool(reading.n) and factor is not None and text.strip() == write(reading, factor, form)
    )


def holds(question: str, text: str, correct_answer: float, form: str | None = None,
          relative_tolerance: float = 0.01) -> bool:
    """Every step of `text` holds: it states the question's factor (within 1%) and is `consistent`."""
    reading, factor = read_question(question), stated_factor(text)
    if reading is None or not reading.n or factor is None:
        return False
    return math.isclose(factor, correct_answer / reading.n, rel_tol=relative_tolerance) and consistent(
        question, text, form
    )


# A sampled completion's opening statement of the factor, in any units and counts: "1 kg = 1000 g", "1000 g = 35.27 oz"
STATEMENT = re.compile(rf"\s*({NUMBER})\s*[A-Za-z][^=]*?=\s*({NUMBER})\s*[A-Za-z]")


def opening_factor(text: str) -> float | None:
    """The factor a sampled completion opens with (`STATEMENT`): 0.03527 for "1000 g = 35.27 oz.", or None."""
    match = STATEMENT.match(text)
    count = float(match.group(1).replace(",", "")) if match else 0
    return float(match.group(2).replace(",", "")) / count if count > 0 else None


def states_the_factor(text: str, factor: float, relative_tolerance: float = 0.01) -> bool:
    """The text opens with a true statement of the factor (how many of the target unit make one of the source)."""
    stated = opening_factor(text)
    return stated is not None and math.isclose(stated, factor, rel_tol=relative_tolerance)
