"""Chain-of-thought by prompting alone: a few-shot chat whose worked examples are the questions of the
training set that convert between the same two units.

    python -m homework.cot test                      # first 100 valid questions
    python -m homework.cot test --split reworded     # the same questions asked in other words
    python -m homework.cot test --split offgrid      # quantities no training row asks (3.7, 0.25, 45, 250)
    python -m homework.cot test --calculator         # the decoder writes each product the model sets up
    python -m homework.cot ask "How many inches in 3 feet?"            # one question (--show_prompt)
    python -m homework.cot show "How many gram are there per 6 kg?"   # the exact rendered prompt
"""
import re
from decimal import Decimal

from . import loader
from .base_llm import BaseLLM
from .calculator import fmt
from .data import Dataset, ask as ask_model, checked_question, evaluate
from .units import NOT_DECIMAL, number, read_with_span, readable

SYSTEM = (
    "You convert units. Be concise: state how many of the target unit make one of the source unit, "
    "multiply, and give the number in <answer></answer> tags."
)


def plain_numbers(text: str) -> str:
    """Thousands separators dropped, fractions, exponents and a quantity in words written as decimals: "1,500 kg" ->
    "1500 kg", "1 1/2 hours" -> "1.5 hours", "1.5e-3 km" -> "0.0015 km", "two thousand metres" -> "2000 metres". The
    model reads "1,500" as 1 and then 500, and "1/2" as 1 and 2."""
    if (read := read_with_span(text)) and re.search("[A-Za-z]", text[slice(*read[1])]):
        text = with_quantity(text, read[1], read[0].n)
    text = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text)
    return NOT_DECIMAL.sub(lambda m: m.group() if (value := number(m.group())) is None else fmt(value), text)


def simple(n: float) -> bool:
    """A quantity that the training questions ask: an integer from 1 to 10."""
    return n == int(n) and 1 <= n <= 10


def shaped(n: float, digit: int) -> float:
    """n with its first digit replaced: shaped(8.5, 3) = 3.5, shaped(4000, 7) = 7000, shaped(1500, 2) = 2500."""
    exact = Decimal(repr(float(n)))
    place = Decimal(10) ** exact.adjusted()  # the place of the first digit
    return float(exact + (digit - int(exact / place)) * place)


def leading_digit(x: float) -> int:
    """The first significant digit: 7 for 7, 70 and 0.7; 1 for 10."""
    return int(f"{abs(x):e}"[0])


def with_quantity(question: str, span: tuple[int, int], n: float) -> str:
    """The question with the quantity at `span` replaced by n."""
    start, end = span
    return question[:start] + fmt(n) + question[end:]


def rounded(x: float, digits: int) -> float:
    """x to `digits` significant digits, whole numbers kept whole: 0.453592 -> 0.4536, 1609.34 -> 1609, 36525 -> 36525."""
    if abs(x) < 1:
        return float(f"{x:.{digits}g}")
    return round(x, max(digits - len(str(int(abs(x)))), 0))


def rationale(n: float, src: str, dst: str, answer: float, digits: int | None = None) -> str:
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
    return f"{per} {src} = {fmt(factor)} {dst}. {fmt(count)} * {fmt(factor)} = {fmt(answer)}. <answer>{fmt(answer)}</answer>"


class CoTModel(BaseLLM):
    max_new_tokens = 64
    # Worked products of the question's pair to copy the pattern of. Each costs about 60 prompt tokens, and the
    # prefill of the prompts is most of the CoT case's time on a CPU. First 100 valid / reworded, fp32: 3 examples
    # 0.46 / 0.41, 4 0.50 / 0.47, 8 0.50 / 0.47 (docs/PERFORMANCE.md).
    num_examples = 4
    # Same-pair examples asked in the question's own words and spellings, only the quantity changed
    # ("how many grammes in 2 kilos" -> "how many grammes in 3 kilos"), so the model copies a worked
    # answer of the same form. Off: the training rows as they are written (how the RFT adapter was trained).
    examples_in_question_wording = True
    # Factors in the worked examples to 4 significant digits (0.4536, not 0.453592), well inside the 5% the
    # grader allows: first 100 valid 0.39 -> 0.43, reworded 0.33 -> 0.35 (EXPERIMENTS.md). None: 6, as fmt writes them.
    factor_digits: int | None = 4
    # Every example converts the question's own pair wherever the training answers give its factor (`factor`):
    # after the pair's rows, the quantities of its category's rows, at that factor. The model copies a factor
    # it sees in each example far better than one it sees once among other pairs' (with 3 examples, first 100
    # valid / reworded: 0.44 / 0.37 -> 0.46 / 0.44; the prompts with fewer than 3 of the pair had scored 5/17
    # and 7/27). Off: other pairs fill in, as the shipped RFT adapter was trained.
    examples_all_of_the_pair = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Read once: (question, answer, reading, quantity's span) for every training row that reads as a conversion.
        self.train = [(q, a, reading, span) for (q, a), reading, span in readable(Dataset("train").data, "CoT")]
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
        """(question, worked answer) pairs: same unit pair first, then same category, never the question itself
        (no example converts the question's quantity between its two units, however it is worded).

        A quantity unlike the training questions' (8.5, 40, 1,500) is matched: each example's quantity takes the
        question's shape with the training row's digit in front (3.5, 70, 2,500 from a row that asks 3, 7, 2; 1.5 from a row that asks 10),
        and its answer scales with it, so the examples show multiplications like the one the question needs.
        Past the pair's own rows (and for a pair that no training row converts, or whose rows all ask the question's
        own quantity) the examples borrow the quantities of its category's rows, with the factor that the training
        answers give (`factor`): all of them the question's pair (`examples_all_of_the_pair`)."""
        reading, at = read_with_span(question) or (None, (0, 0))  # read once: its quantity is rewritten below
        pair, cat = (reading.units, reading.category) if reading else (None, "unknown")
        like = reading is not None and not simple(reading.n)

        def quantity(r) -> float:  # an example's quantity: the row's own, or its first digit in the question's shape
            return shaped(reading.n, leading_digit(r.n)) if like else r.n

        # the pair's own rows, then its category's rows at the pair's factor (borrowed). Off examples_all_of_the_pair,
        # borrowed only where the pair has no row to show (none, or no reading: pair is None, or each asks the question's quantity)
        borrow = reading is not None and (self.examples_all_of_the_pair or not any(
            r.units == pair and quantity(r) != reading.n for _, _, r, _ in self.train))  # the scan only for RFT
        borrowed = self.factor(pair) if borrow else None

        def rank(row):
            return (row[2].units != pair, row[2].category != cat)

        chosen, seen_n = [], set()
        for q, a, r, span in sorted(self.train, key=rank):  # stable: ties keep the file's order
            n, borrowing = quantity(r), borrowed is not None and r.category == cat
            # never the question's own conversion, in any words: its answer would be in the prompt
            if q == question or n in seen_n or ((borrowing or r.units == pair) and n == reading.n):
                continue
            factor = borrowed if borrowing else a / r.n
            if borrowing or (self.examples_in_question_wording and r.units == pair):
                q, r = with_quantity(question, at, n), r._replace(src=reading.src, dst=reading.dst)
            elif n != r.n:  # else the row as written
                q = with_quantity(q, span, n)
            chosen.append((plain_numbers(q), rationale(n, r.src, r.dst, factor * n, self.factor_digits)))
            seen_n.add(n)
            if len(chosen) == self.num_examples:
                break
        return chosen[::-1]  # the closest example sits right before the question

    def format_prompt(self, question: str, hint: float | None = None) -> str:
        """hint: the true answer, stated after the question (rationalization, for datagen only)."""
        messages = [{"role": "system", "content": SYSTEM}]
        for q, worked in self.examples(question):
            messages += [{"role": "user", "content": q}, {"role": "assistant", "content": worked}]
        asked = plain_numbers(question)
        messages.append({"role": "user", "content": asked if hint is None else f"{asked} (Hint: the answer is {fmt(hint)}.)"})
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


class RFTModel(CoTModel):
    """The CoT prompt as the shipped RFT adapter was trained on it: worked examples as the training rows
    are written, only a quantity unlike theirs matched (`CoTModel.examples`), factors to 4 digits as CoT's.
    (With that adapter, first 100 of valid / reworded: 0.93 / 0.93.)"""

    num_examples = 3
    examples_in_question_wording = False
    examples_all_of_the_pair = False


def load(checkpoint: str = loader.DEFAULT_CHECKPOINT, calculator: bool = False) -> CoTModel:
    """calculator: the decoder writes each product the model sets up (`a * b =`); off, the pure model, as graded."""
    return CoTModel(checkpoint, calculator=calculator)


def test(max_question: int = 100, split: str = "valid", checkpoint: str = loader.DEFAULT_CHECKPOINT, calculator: bool = False):
    evaluate(load(checkpoint, calculator), max_question, split)


def ask(question: str, show_prompt: bool = False, checkpoint: str = loader.DEFAULT_CHECKPOINT, calculator: bool = False):
    question = checked_question(question)  # before the model loads
    ask_model(load(checkpoint, calculator), question, show_prompt)


def show(question: str = "How many gram are there per 6 kg?", checkpoint: str = loader.DEFAULT_CHECKPOINT):
    print(load(checkpoint).format_prompt(question))


if __name__ == "__main__":
    loader.cli({"test": test, "ask": ask, "show": show})
