"""Chain-of-thought by prompting alone: a few-shot chat whose worked examples are the questions of the
training set that convert between the same two units.

    python -m homework.cot test                      # first 100 valid questions
    python -m homework.cot test --split reworded     # the same questions asked in other words
    python -m homework.cot test --split offgrid      # quantities no training row asks (3.7, 0.25, 45, 250)
    python -m homework.cot test --calculator         # the decoder writes each product the model sets up
    python -m homework.cot ask "How many inches in 3 feet?"            # one question (--show_prompt)
    python -m homework.cot show "How many gram are there per 6 kg?"   # the exact rendered prompt
"""
from dataclasses import dataclass

from . import loader
from .base_llm import BaseLLM
from .data import Dataset, ask as ask_model, checked_question, evaluate
from .numbers import fmt, leading_digit, rounded, shaped
from .reader import Reading, plain_numbers, read_with_span, readable, with_quantity

SYSTEM = (
    "You convert units. Be concise: state how many of the target unit make one of the source unit, "
    "multiply, and give the number in <answer></answer> tags."
)


def simple(n: float) -> bool:
    """A quantity that the training questions ask: an integer from 1 to 10."""
    return n == int(n) and 1 <= n <= 10


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


@dataclass(frozen=True)
class PromptStyle:
    """How a prompt's worked examples are chosen and written."""

    examples: int  # how many. Each costs about 60 prompt tokens, and the prefill is most of the CoT case's time on a CPU
    in_question_words: bool  # the pair's examples asked in the question's own words and spellings, only the quantity changed
    all_of_the_pair: bool  # every example converts the question's pair (past its rows, its category's, at the pair's factor)
    factor_digits: int | None = 4  # factors to this many significant digits (0.4536, not 0.453592); None: as fmt writes them


# CoT: every example the question's pair, asked as the question is, so the model copies a worked answer of the same form and
# a factor it sees in each example. First 100 valid / reworded, fp32: 3 examples 0.46 / 0.41, 4 0.50 / 0.47, 8 0.50 / 0.47.
QUESTION_PAIR = PromptStyle(examples=4, in_question_words=True, all_of_the_pair=True)


class CoTModel(BaseLLM):
    max_new_tokens = 64
    style = QUESTION_PAIR

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
        convert the pair, at the factor the training answers give (`factor`): always in QUESTION_PAIR, and in
        TRAINING_ROWS only where the pair has no row to show."""
        pair, cat = (reading.units, reading.category) if reading else (None, "unknown")
        like = reading is not None and not simple(reading.n)

        def quantity(r) -> float:
            return shaped(reading.n, leading_digit(r.n)) if like else r.n

        fill_with_pair = reading is not None and (self.style.all_of_the_pair or not any(
            r.units == pair and quantity(r) != reading.n for _, _, r, _ in self.train))
        pair_factor = self.factor(pair) if fill_with_pair else None
        chosen, seen = [], set()
        for row in sorted(self.train, key=lambda row: (row[2].units != pair, row[2].category != cat)):  # stable: file order
            q, a, r, _ = row
            n, as_pair = quantity(r), pair_factor is not None and r.category == cat
            if q == question or n in seen or ((as_pair or r.units == pair) and n == reading.n):
                continue
            chosen.append((row, n, pair_factor if as_pair else a / r.n, as_pair or (self.style.in_question_words and r.units == pair)))
            seen.add(n)
            if len(chosen) == self.style.examples:
                break
        return chosen

    def worked(self, question: str, reading: Reading | None, at: tuple[int, int], row: tuple, n: float, factor: float,
               in_question_words: bool) -> tuple[str, str]:
        """One example: the row asked at quantity n (in the question's words and spellings, or its own), and its
        worked answer (`rationale`) at `factor`."""
        q, _, r, span = row
        if in_question_words:
            q, r = with_quantity(question, at, n), r._replace(src=reading.src, dst=reading.dst)
        elif n != r.n:
            q = with_quantity(q, span, n)
        return plain_numbers(q), rationale(n, r.src, r.dst, factor * n, self.style.factor_digits)

    def format_prompt(self, question: str, hint: float | None = None) -> str:
        """hint: the true answer, stated after the question (rationalization, for datagen only)."""
        messages = [{"role": "system", "content": SYSTEM}]
        for q, worked in self.examples(question):
            messages += [{"role": "user", "content": q}, {"role": "assistant", "content": worked}]
        asked = plain_numbers(question)
        messages.append({"role": "user", "content": asked if hint is None else f"{asked} (Hint: the answer is {fmt(hint)}.)"})
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def load(checkpoint: str = loader.DEFAULT_CHECKPOINT, calculator: bool = False) -> CoTModel:
    """calculator: the decoder writes each product the model sets up (`a * b =`); off, the pure model, as graded."""
    return CoTModel(checkpoint, calculator=calculator)


def test(max_question: int = 100, split: str = "valid", checkpoint: str = loader.DEFAULT_CHECKPOINT, calculator: bool = False):
    """Accuracy on the first max_question questions of a split, per category and kind of quantity, and the misses by kind."""
    evaluate(load(checkpoint, calculator), max_question, split)


def ask(question: str, show_prompt: bool = False, checkpoint: str = loader.DEFAULT_CHECKPOINT, calculator: bool = False):
    """Answer one question: what the model wrote, the parsed answer and pint's."""
    question = checked_question(question)  # before the model loads
    ask_model(load(checkpoint, calculator), question, show_prompt)


def show(question: str = "How many gram are there per 6 kg?", checkpoint: str = loader.DEFAULT_CHECKPOINT):
    """Print the exact prompt the model sees for a question."""
    print(load(checkpoint).format_prompt(question))


if __name__ == "__main__":
    loader.cli({"test": test, "ask": ask, "show": show},
               {"CoTModel.style": CoTModel.style, "CoTModel.max_new_tokens": CoTModel.max_new_tokens, "BaseLLM.cpu_prefill_tokens": BaseLLM.cpu_prefill_tokens})
