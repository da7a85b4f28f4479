"""RFT's training rows, made from datagen's in named steps of the recipe (datagen.py stays the homework's).

    python -m homework.recipes.rft_data data/rft.json data/rft_train.json --overwrite   # the shipped sizes
    python -m homework.recipes.rft_data data/rft.json runs/small.json --grid_per_pair 0 --spread_count 200

1. rewrite: each kept completion ("1 kg = 1000 g. 6 * 1000 = 6000. <answer>6000</answer>", as the CoT model wrote it)
   becomes the reasoning RFT learns, in one form (units/rationale.py), at the factor the completion stated; each is
   verified step by step (`rationale.holds`).
2. grid: each unit pair a kept completion converts, asked at `grid_per_pair` of the whole quantities 1 to 10 that no
   kept row asks (the quantities the homework's questions ask), and at `halves_per_pair` of the halves 0.5 to 9.5
   (quantities people ask too), written out at the factor that completion stated.
3. spread: `spread_count` of the generator's questions, at quantities of every digit length and decimal place, each
   written out at the factor a kept completion stated for its unit pair. A pair with no kept completion gets none.

Every factor was sampled and verified; no step reads an evaluation set. Rows are [question, answer, reasoning], as
datagen writes them.
"""
from pathlib import Path

from ..cli import check_flags, check_output_file, cli, is_count
from ..data import read_rows, write_json
from ..units import rationale
from ..units.generator import on_grid, spread as spread_questions
from ..units.reader import read_question

WHOLES, HALVES = list(range(1, 11)), [n + 0.5 for n in range(10)]


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


def at_stated_factors(rows: list[list], questions: list[list], form: str | None = None) -> list[list]:
    """Each of `questions` whose unit pair a row of `rows` states a factor for, written out at that factor in `form`
    (and verified)."""
    factors = {}
    for question, _, reasoning in rows:
        factors.setdefault(read_question(question).units, rationale.stated_factor(reasoning))
    out = []
    for question, answer in questions:
        reading = read_question(question)
        if reading is not None and reading.units in factors:
            reasoning = rationale.write(reading, factors[reading.units], form)
            if rationale.holds(question, reasoning, answer, form):
                out.append([question, answer, reasoning])
    return out


def grid(rows: list[list], per_pair: int, seed: int = 0, form: str | None = None, quantities=WHOLES) -> list[list]:
    return at_stated_factors(rows, on_grid([row[:2] for row in rows], quantities, seed, per_pair) if per_pair else [],
                             form)


def spread(rows: list[list], count: int, seed: int = 0, form: str | None = None) -> list[list]:
    return at_stated_factors(rows, spread_questions(count, seed) if count else [], form)


def make(sampled: str, output: str, form: str = rationale.FORM, grid_per_pair: int = 10, halves_per_pair: int = 3,
         spread_count: int = 2100, seed: int = 0, rewrite_rows: bool = True, max_sampled: int | None = None,
         overwrite: bool = False) -> dict:
    """Read datagen's rows from `sampled`, write RFT's rows to `output`; returns how many each step made.

    Args:
        sampled: datagen's [question, answer, completion] rows
        output: RFT's [question, answer, reasoning] rows
        form: the reasoning's form (units/rationale.py FORMS)
        grid_per_pair: the grid step: each pair at this many of the whole quantities 1 to 10 no kept row asks (0: none)
        halves_per_pair: ... and at this many of the halves 0.5 to 9.5 (0: none)
        spread_count: the generator's questions to write out (0: none)
        seed: of the grid's wordings and the generator's questions
        rewrite_rows: rewrite the completions into `form`; off: the completions as sampled, and no other step
        max_sampled: only the first this many of datagen's rows (a smaller slice, for learning curves)
        overwrite: replace an existing output (without it, an existing file is refused)"""
    check_flags([("form", form, form in rationale.FORMS, " or ".join(rationale.FORMS)),
                 ("grid_per_pair", grid_per_pair, is_count(grid_per_pair, 0), "0 for none, or more"),
                 ("halves_per_pair", halves_per_pair, is_count(halves_per_pair, 0), "0 for none, or more"),
                 ("spread_count", spread_count, is_count(spread_count, 0), "0 for none, or more"),
                 ("max_sampled", max_sampled, max_sampled is None or is_count(max_sampled), "1 or more, or none")])
    check_output_file(Path(output), overwrite)
    rows = read_rows(Path(sampled), reasoning=True)[:max_sampled]
    kept = rewrite(rows, form) if rewrite_rows else rows
    on_grid = (grid(kept, grid_per_pair, seed, form) + grid(kept, halves_per_pair, seed + 1, form, HALVES)
               if rewrite_rows else [])
    more = spread(kept, spread_count, seed, form) if rewrite_rows else []
    write_json(Path(output), kept + on_grid + more)
    figures = {"sampled": len(rows), "rewritten": len(kept) if rewrite_rows else 0, "grid": len(on_grid),
               "spread": len(more), "rows": len(kept) + len(on_grid) + len(more)}
    print(f"rft_data: {figures}")
    return figures


if __name__ == "__main__":
    cli(make)
