"""Chain-of-thought by prompting alone: a few-shot chat whose worked examples are the questions of the
training set that convert between the same two units.

    python -m homework.cot test                      # first 100 valid questions
    python -m homework.cot test --max_question 10
    python -m homework.cot show "How many gram are there per 6 kg?"   # the exact rendered prompt
"""
from . import loader
from .base_llm import BaseLLM
from .data import Dataset, evaluate
from .units import category, parse_question, unit_of

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


def rationale(n: int, src: str, dst: str, answer: float) -> str:
    """The worked answer we show the model, e.g. "1 kg = 1000 gram. 6 * 1000 = 6000. <answer>6000</answer>"."""
    return f"1 {src} = {fmt(answer / n)} {dst}. {n} * {fmt(answer / n)} = {fmt(answer)}. <answer>{fmt(answer)}</answer>"


class CoTModel(BaseLLM):
    max_new_tokens = 64
    num_examples = 3

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Parsed once: (question, answer, (n, src, dst), unit pair, category) for every training row.
        self.train = []
        for q, a in Dataset("train").data:
            n, src, dst = parse_question(q)
            self.train.append((q, a, (n, src, dst), (unit_of(src), unit_of(dst)), category(q)))

    def examples(self, question: str) -> list[tuple[str, str]]:
        """(question, worked answer) pairs: same unit pair first, then same category, never the question itself."""
        parsed = parse_question(question)
        pair = parsed and (unit_of(parsed[1]), unit_of(parsed[2]))
        cat = category(question)

        def rank(row):
            return (row[3] != pair, row[4] != cat)

        chosen, seen_n = [], set()
        for q, a, p, _, _ in sorted(self.train, key=rank):  # stable: ties keep the file's order
            if q != question and p[0] not in seen_n:
                chosen.append((q, rationale(*p, a)))
                seen_n.add(p[0])
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


def load(checkpoint: str = loader.DEFAULT_CHECKPOINT) -> CoTModel:
    return CoTModel(checkpoint)


def test(max_question: int = 100, checkpoint: str = loader.DEFAULT_CHECKPOINT):
    evaluate(load(checkpoint), max_question)


def show(question: str = "How many gram are there per 6 kg?", checkpoint: str = loader.DEFAULT_CHECKPOINT):
    print(load(checkpoint).format_prompt(question))


if __name__ == "__main__":
    loader.cli({"test": test, "show": show})
