"""Supervised fine-tuning: LoRA on "question <answer>number</answer>", no chat template. The question is read
first and asked in one wording ("Convert 3 foot to inch." for "How many inches in 3 feet?" and "3 ft to in"),
so the model learns conversions, not sentences; each training question is also asked with other quantities.

    python -m homework.sft train                  # trains, saves homework/sft_model, prints the accuracy (~30 min on 2 cores)
    python -m homework.sft train --help           # every flag, with its help line
    python -m homework.sft test                   # evaluates homework/sft_model (or: test PATH)
    python -m homework.sft test --split reworded  # ... on the same questions asked in other words
    python -m homework.sft ask "How many inches in 3 feet?"
    python -m homework.sft show                   # one training example, token by token, marking what is trained on
    accelerate launch -m homework.sft train       # several GPUs, one process each
    torchrun --nproc_per_node 2 -m homework.sft train   # several processes on a CPU
"""
from pathlib import Path

from . import loader, lora
from .base_llm import BaseLLM
from .data import Dataset, ask as ask_model, checked_question, evaluate
from .generator import reword
from .numbers import fmt, round_answer
from .reader import plain_numbers, read_question
from .units import unit_name

MODEL_DIR = Path(__file__).resolve().parent / "sft_model"
TRAINING = lora.Training()  # the shared defaults: 2 epochs, lr 5e-4, batch 8


def answer_text(answer: float) -> str:
    return f" <answer>{fmt(round_answer(answer))}</answer>"


def plain_question(question: str) -> str:
    """The question in one wording, with one name per unit: "How many inches in 3 feet?", "3 ft to in" and
    "Express 3 foot in in." all become "Convert 3 foot to inch.". Without any reasoning written, what the
    model learns of a conversion in one wording barely carries over to another, so the reader's work is done
    before the model sees the question. A question that doesn't read is kept as
    written (numbers made plain)."""
    reading = read_question(question)
    if reading is None:
        return plain_numbers(question)
    src, dst = map(unit_name, reading.units)
    return f"Convert {fmt(reading.n)} {src} to {dst}."


class SFTModel(BaseLLM):
    def format_prompt(self, question: str) -> str:
        return plain_question(question)


def load(path: str | Path = MODEL_DIR) -> SFTModel:
    return lora.load_adapter(path, SFTModel)


@lora.command(TRAINING)
def train(output_dir: str = str(MODEL_DIR), max_question: int = 100, more_wordings: int = 4, training: lora.Training = TRAINING):
    """Train on the training set, each question also asked with other quantities, save the adapter, then print the
    accuracy on the first valid questions.

    Args:
        output_dir: where the adapter goes (tensorboard logs in output_dir/runs)
        max_question: valid questions to evaluate on afterwards (0: none)
        more_wordings: each training question also asked this many times with another quantity (generator.reword)"""
    lora.check_flags([("max_question", max_question, loader.is_count(max_question, 0), "0 for none, or more"),
                      ("more_wordings", more_wordings, loader.is_count(more_wordings, 0), "0 for none, or more")])
    rows = Dataset("train").data
    rows = rows + reword(rows, training.seed, more_wordings)  # none when more_wordings is 0
    examples = [(plain_question(q), answer_text(a)) for q, a in rows]
    llm = SFTModel(training.checkpoint, dtype=loader.policy().train_dtype)
    llm, trainer = lora.train(examples, output_dir, training, llm=llm)
    if max_question and trainer.is_world_process_zero():
        evaluate(llm, max_question)


def test(path: str = str(MODEL_DIR), max_question: int = 100, split: str = "valid"):
    """Accuracy on the first max_question questions of a split, per category and kind of quantity, and the misses by kind."""
    evaluate(load(path), max_question, split)


def ask(question: str, path: str = str(MODEL_DIR), show_prompt: bool = False):
    """Answer one question: what the model wrote, the parsed answer and pint's."""
    question = checked_question(question)  # before the model loads
    ask_model(load(path), question, show_prompt)


def show(index: int = 0, checkpoint: str = loader.DEFAULT_CHECKPOINT):
    """Print training example `index` as the model sees it, token by token; [brackets] mark the tokens the loss is computed on."""
    from transformers import AutoTokenizer

    question, answer = Dataset("train")[index]
    print(f"question: {question}")
    lora.show_tokens(AutoTokenizer.from_pretrained(loader.resolve(checkpoint)[0]), plain_question(question), answer_text(answer))


if __name__ == "__main__":
    loader.cli({"train": train, "test": test, "ask": ask, "show": show},
               {"SFTModel.max_new_tokens": SFTModel.max_new_tokens, "BaseLLM.cpu_prefill_tokens": BaseLLM.cpu_prefill_tokens})
