"""The CoT prompt's worked examples: for a question, which training rows to show and how each is worked out.

Every example converts the question's unit pair, asked in the question's own words, at a quantity shaped like the
question's, and never the question's own quantity; each is worked as "1 kg = 1000 g. 6 * 1000 = 6000.
<answer>6000</answer>".
"""

from .numbers import fmt, leading_digit, rounded, shaped
from .reader import Reading, plain_numbers, read_with_span, readable, with_quantity


def simple(n: float) -> bool:
    """A quantity that the training questions ask: an integer from 1 to 10."""
    return n == int(n) and 1 <= n <= 10


def worked_answer(n: float, src: str, dst: str, answer: float, digits: int | None = None) -> str:
    """The worked answer we show the model, e.g. "1 kg = 1000 gram. 6 * 1000 = 6000. <answer>6000</answer>".
    With `digits`, the factor is rounded to that many significant digits and the product worked out from it
    ("1 lb = 0.4536 kg. 4 * 0.4536 = 1.8144."): a shorter product to copy the pattern of.

    A quantity of a thousand or more is counted in its own power of ten: "1000 g = 35.27 oz. 2.5 * 35.27 =
    88.175." for 2,500 g, not "2500 * 0.03527 = 88.175.". The model multiplies a number under 10, as the
    training questions ask, instead of a long one (on 83 such questions, CoT 23 -> 32 right, RFT 35 -> 52;
    below 1000 it did not help: EXPERIMENTS.md)."""
    per = 10 ** (len(str(int(n))) - 1) if n >= 1000 else 1
    count, factor = n / per, answer / n * per
    if digits is not None:
        factor = rounded(factor, digits)
        answer = rounded(count * factor, digits + 1)
    product = f"{fmt(count)} * {fmt(factor)} = {fmt(answer)}"
    return f"{per} {src} = {fmt(factor)} {dst}. {product}. <answer>{fmt(answer)}</answer>"


# Every example converts the question's pair, asked as the question is, so the model copies a worked answer of the
# same form and a factor it sees in each example. Each costs about 60 prompt tokens, and the prefill is most of the CoT
# case's time on a CPU. First 100 valid / reworded, fp32: 3 examples 0.46 / 0.41, 4 0.50 / 0.47, 8 0.50 / 0.47.
EXAMPLES = 4
FACTOR_DIGITS = 4  # factors to this many significant digits (0.4536, not 0.453592)


class FewShot:
    """The worked examples for any question, from the training rows (read once)."""

    def __init__(self, rows: list[list]):
        # (question, answer, reading, quantity's span) for every training row that reads as a conversion
        self.train = [(q, a, reading, span) for (q, a), reading, span in readable(rows, "CoT")]
        self.factors = {r.units: a / r.n for _, a, r, _ in self.train}  # how many of one unit make one of another

    def factor(self, pair: tuple[str, str]) -> float | None:
        """How many pair[1] make one pair[0], from the training answers: as asked, the other way round, or through
        one other unit (gallon -> litre -> cc). None if the training set can't tell."""

        def known(u: str, v: str) -> float | None:
            return self.factors.get((u, v)) or (1 / self.factors[v, u] if (v, u) in self.factors else None)

        src, dst = pair
        if direct := known(src, dst):
            return direct
        for via in sorted({unit for units in self.factors for unit in units}):
            if (first := known(src, via)) and (second := known(via, dst)):
                return first * second
        return None

    def examples(self, question: str) -> list[tuple[str, str]]:
        """(question, worked answer) pairs, the closest last (right before the question): choose the training rows,
        then write each as a worked example."""
        reading, at = read_with_span(question) or (None, (0, 0))  # read once: its quantity is rewritten below
        chosen = self.choose(question, reading)
        return [self.worked(question, reading, at, *choice) for choice in chosen][::-1]

    def choose(self, question: str, reading: Reading | None) -> list[tuple[tuple, float, float, bool]]:
        """(training row, its quantity in the prompt, the factor, whether it is asked in the question's words) for
        each example, closest first: the question's pair, then its category; never the question's own conversion in
        any words (its answer would be in the prompt).

        A quantity unlike the training questions' (8.5, 40, 1,500) is matched: each example's quantity takes the
        question's shape with the row's first digit in front (3.5, 70, 2,500 from a row that asks 3, 7, 2), so the
        examples show multiplications like the one the question needs. Past the pair's own rows, the category's rows
        are asked as the pair, at the factor the training answers give (`factor`)."""
        pair, cat = (reading.units, reading.category) if reading else (None, "unknown")
        like = reading is not None and not simple(reading.n)

        def quantity(r) -> float:
            return shaped(reading.n, leading_digit(r.n)) if like else r.n

        pair_factor = self.factor(pair) if reading is not None else None
        chosen, seen = [], set()
        for row in sorted(
            self.train, key=lambda row: (row[2].units != pair, row[2].category != cat)
        ):  # stable: file order
            q, a, r, _ = row
            n, as_pair = quantity(r), pair_factor is not None and r.category == cat
            if q == question or n in seen or ((as_pair or r.units == pair) and n == reading.n):
                continue
            chosen.append((row, n, pair_factor if as_pair else a / r.n, as_pair or r.units == pair))
            seen.add(n)
            if len(chosen) == EXAMPLES:
                break
        return chosen

    def worked(
        self,
        question: str,
        reading: Reading | None,
        at: tuple[int, int],
        row: tuple,
        n: float,
        factor: float,
        in_question_words: bool,
    ) -> tuple[str, str]:
        """One example: the row asked at quantity n (in the question's words and spellings, or its own), and its
        worked answer (`worked_answer`) at `factor`."""
        q, _, r, span = row
        if in_question_words:
            q, r = with_quantity(question, at, n), r._replace(src=reading.src, dst=reading.dst)
        elif n != r.n:
            q = with_quantity(q, span, n)
        return plain_numbers(q), worked_answer(n, r.src, r.dst, factor * n, FACTOR_DIGITS)
