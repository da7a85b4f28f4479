"""Chain-of-thought by prompting alone: a few-shot chat whose worked examples convert the question's unit pair.

    python -m homework.cot test                      # first 100 valid questions
    python -m homework.cot test --split reworded     # the same questions asked in other words
    python -m homework.cot test --split offgrid      # quantities no training row asks (3.7, 0.25, 45, 250)
    python -m homework.cot test --calculator         # the decoder writes each product the model sets up
    python -m homework.cot ask "How many inches in 3 feet?"            # one question (--show_prompt)
    python -m homework.cot show "How many gram are there per 6 kg?"   # the exact rendered prompt

The examples come from the training set (units/fewshot.py): four of the question's pair, asked in its words, e.g.
"How many gram are there per 4 kg?" answered "1 kg = 1000 gram. 4 * 1000 = 4000. <answer>4000</answer>".
"""
from . import loader
from .base_llm import BaseLLM
from .cli import checked_question, checked_test, cli
from .data import Dataset
from .evaluation import ask as ask_model, evaluate
from .units.fewshot import FewShot
from .units.reader import plain_numbers

SYSTEM = (
    "You convert units. Be concise: state how many of the target unit make one of the source unit, "
    "multiply, and give the number in <answer></answer> tags."
)


class CoTModel(BaseLLM):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fewshot = FewShot(Dataset("train").data)

    def format_prompt(self, question: str) -> str:
        messages = [{"role": "system", "content": SYSTEM}]
        for example, worked in self.fewshot.examples(question):
            messages.append({"role": "user", "content": example})
            messages.append({"role": "assistant", "content": worked})
        messages.append({"role": "user", "content": plain_numbers(question)})
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def load(checkpoint: str = loader.DEFAULT_CHECKPOINT, calculator: bool = False) -> CoTModel:
    """calculator: the decoder writes each product the model sets up (`a * b =`); off, the pure model, as graded."""
    return CoTModel(checkpoint, calculator=calculator)


def test(max_question: int = 100, split: str = "valid", checkpoint: str = loader.DEFAULT_CHECKPOINT,
         calculator: bool = False):
    """Accuracy on the first max_question questions of a split, per category and kind of quantity, and the misses."""
    max_question, split = checked_test(max_question, split)  # before the model loads
    evaluate(load(checkpoint, calculator), max_question, split)


def ask(question: str, show_prompt: bool = False, checkpoint: str = loader.DEFAULT_CHECKPOINT,
        calculator: bool = False):
    """Answer one question: what the model wrote, the parsed answer and pint's."""
    question = checked_question(question)  # before the model loads
    ask_model(load(checkpoint, calculator), question, show_prompt)


def show(question: str = "How many gram are there per 6 kg?", checkpoint: str = loader.DEFAULT_CHECKPOINT):
    """Print the exact prompt the model sees for a question."""
    print(load(checkpoint).format_prompt(question))


if __name__ == "__main__":
    cli({"test": test, "ask": ask, "show": show}, {"CoTModel.max_new_tokens": CoTModel.max_new_tokens})
