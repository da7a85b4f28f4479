"""Chain-of-thought by prompting alone: a few-shot chat whose worked examples are the questions of the
training set that convert between the same two units.

    python -m homework.cot test                      # first 100 valid questions
    python -m homework.cot test --split reworded     # the same questions asked in other words
    python -m homework.cot ask "How many inches in 3 feet?"            # one question (--show_prompt)
    python -m homework.cot show "How many gram are there per 6 kg?"   # the exact rendered prompt
"""
from . import loader
from .base_llm import BaseLLM
from .data import Dataset, ask as ask_model, evaluate
from .units import read_with_span, readable

SYSTEM = (
    "You convert units. Be concise: state how many of the target unit make one of the source unit, "
    "multiply, and give the number in <answer></answer> tags."
)


def fmt(x: float) -> str:
    """A number as a person writes it: no exponent, at most 6 significant digits, no trailing zeros."""
    if abs(x) >= 1e5:
        return str(round(x))
    text = f"{x:.{max(0, 5 - len(str(int(abs(x)))) + 1)}f}" if abs(x) >= 1 else f"{x:.6g}"
    return text.rstrip("0").rstrip(".") if "." in text and "e" not in text else text


def rationale(n: float, src: str, dst: str, answer: float) -> str:
    """The worked answer we show the model, e.g. "1 kg = 1000 gram. 6 * 1000 = 6000. <answer>6000</answer>"."""
    return f"1 {src} = {fmt(answer / n)} {dst}. {fmt(n)} * {fmt(answer / n)} = {fmt(answer)}. <answer>{fmt(answer)}</answer>"


class CoTModel(BaseLLM):
    max_new_tokens = 64
    num_examples = 3
    # Same-pair examples asked in the question's own words and spellings, only the quantity changed
    # ("how many grammes in 2 kilos" -> "how many grammes in 3 kilos"), so the model copies a worked
    # answer of the same form. Off: the training rows as they are written (how the RFT adapter was trained).
    examples_in_question_wording = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Read once: (question, answer, reading) for every training row that reads as a conversion.
        self.train = [(q, a, reading) for (q, a), reading in readable(Dataset("train").data, "CoT")]

    def examples(self, question: str) -> list[tuple[str, str]]:
        """(question, worked answer) pairs: same unit pair first, then same category, never the question itself."""
        reading, (start, end) = read_with_span(question) or (None, (0, 0))  # read once: its quantity is rewritten below
        pair, cat = (reading.units, reading.category) if reading else (None, "unknown")

        def rank(row):
            return (row[2].units != pair, row[2].category != cat)

        chosen, seen_n = [], set()
        for q, a, r in sorted(self.train, key=rank):  # stable: ties keep the file's order
            if q != question and r.n not in seen_n:
                if self.examples_in_question_wording and r.units == pair:
                    q, r = question[:start] + fmt(r.n) + question[end:], r._replace(src=reading.src, dst=reading.dst)
                chosen.append((q, rationale(*r, a)))
                seen_n.add(r.n)
            if len(chosen) == self.num_examples:
                break
        return chosen[::-1]  # the closest example sits right before the question

    def format_prompt(self, question: str, hint: float | None = None) -> str:
        """hint: the true answer, stated after the question (rationalization, for datagen only)."""
        messages = [{"role": "system", "content": SYSTEM}]
        for q, worked in self.examples(question):
            messages += [{"role": "user", "content": q}, {"role": "assistant", "content": worked}]
        messages.append({"role": "user", "content": question if hint is None else f"{question} (Hint: the answer is {fmt(hint)}.)"})
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


class RFTModel(CoTModel):
    """The CoT prompt as the shipped RFT adapter was trained on it: worked examples as the training rows
    are written. (Measured with that adapter: 0.87 / 0.71 on valid / reworded, 0.85 / 0.67 with the
    examples in the question's wording.)"""

    examples_in_question_wording = False


def load(checkpoint: str = loader.DEFAULT_CHECKPOINT) -> CoTModel:
    return CoTModel(checkpoint)


def test(max_question: int = 100, split: str = "valid", checkpoint: str = loader.DEFAULT_CHECKPOINT):
    evaluate(load(checkpoint), max_question, split)


def ask(question: str, show_prompt: bool = False, checkpoint: str = loader.DEFAULT_CHECKPOINT):
    ask_model(load(checkpoint), question, show_prompt)


def show(question: str = "How many gram are there per 6 kg?", checkpoint: str = loader.DEFAULT_CHECKPOINT):
    print(load(checkpoint).format_prompt(question))


if __name__ == "__main__":
    loader.cli({"test": test, "ask": ask, "show": show})
