"""RFT's training rows, made from datagen's in two named steps of the recipe (datagen.py stays the homework's).

    python -m homework.recipes.rft_data data/rft.json data/rft_train.json --form split --spread_count 2100

1. rewrite: each kept completion ("1 kg = 1000 g. 6 * 1000 = 6000. <answer>6000</answer>", as the CoT model wrote it)
   becomes the reasoning RFT learns, in one form (units/rationale.py), at the factor the completion stated; each is
   verified step by step (`rationale.holds`).
2. spread: `spread` more of the generator's questions, at quantities of every digit length and decimal place, each
   written out at the factor a kept completion stated for its unit pair (sampled and verified), in the same form. A
   pair with no kept completion gets no spread row. The generator never reads an evaluation set.

Rows are [question, answer, reasoning], as datagen writes them.
"""
from pathlib import Path

from ..cli import check_flags, cli, is_count
from ..data import read_rows, write_json
from ..units import rationale
from ..units.generator import spread as spread_questions
from ..units.reader import read_question


def rewrite(rows: list[list], form: str | None = None) -> list[list]:
    """Each [question, answer, completion] as [question, answer, the reasoning in `form` at the completion's factor];
    a row whose rewrite doesn't hold step by step is dropped."""
    out = []
    for question, answer, completion in rows:
        reading, factor = read_question(question), rationale.opening_factor(completion)
        if reading is None or not reading.n or factor is None:
            continue
        reasoning = rationale.write(reading, factor, form)
        if rationale.holds(question, reasoning, answer, form):
            out.append([question, answer, reasoning])
    return out


def spread(rows: list[list], count: int, seed: int = 0, form: str | None = None) -> list[list]:
    """`count` of the generator's questions, those whose pair a row of `rows` states a factor for, written out at that
    factor in `form` (and verified)."""
    factors = {}
    for question, _, reasoning in rows:
        factors.setdefault(read_question(question).units, rationale.stated_factor(reasoning))
    out = []
    for question, answer in spread_questions(count, seed) if count else []:
        reading = read_question(question)
        if reading.units in factors:
            reasoning = rationale.write(reading, factors[reading.units], form)
            if rationale.holds(question, reasoning, answer, form):
                out.append([question, answer, reasoning])
    return out


def make(sampled: str, output: str, form: str = rationale.FORM, spread_count: int = 2100, seed: int = 0,
         rewrite_rows: bool = True) -> dict:
    """Read datagen's rows from `sampled`, write RFT's rows to `output`; returns how many each step made.

    Args:
        sampled: datagen's [question, answer, completion] rows
        output: RFT's [question, answer, reasoning] rows
        form: the reasoning's form (units/rationale.py FORMS)
        spread_count: the generator's questions to write out (0: none)
        seed: of the generator's questions
        rewrite_rows: rewrite the completions into `form`; off: the completions as sampled (and no spread)"""
    check_flags([("form", form, form in rationale.FORMS, " or ".join(rationale.FORMS)),
                 ("spread_count", spread_count, is_count(spread_count, 0), "0 for none, or more")])
    rows = read_rows(Path(sampled), reasoning=True)
    kept = rewrite(rows, form) if rewrite_rows else rows
    more = spread(kept, spread_count, seed, form) if rewrite_rows else []
    write_json(Path(output), kept + more)
    figures = {"sampled": len(rows), "rewritten": len(kept) if rewrite_rows else 0, "spread": len(more),
               "rows": len(kept) + len(more)}
    print(f"rft_data: {figures}")
    return figures


if __name__ == "__main__":
    cli(make)
