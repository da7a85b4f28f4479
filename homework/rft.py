"""Rejection-sampling fine-tuning: SFT's LoRA training on question + reasoning (data/rft.json from datagen).

    python -m homework.datagen data/rft.json       # first: sample and verify the reasoning
    python -m homework.rft train                   # trains homework/rft_model, prints the accuracy
    python -m homework.rft train --help            # every flag, with its help line
    python -m homework.rft test                    # evaluates homework/rft_model
    python -m homework.rft test --split offgrid    # ... on quantities no training row asks
    python -m homework.rft test --calculator       # ... with the decoder writing each result (calculator.py)
    python -m homework.rft ask "How many inches in 3 feet?"
    python -m homework.rft show                    # a training example, the trained tokens in [brackets]

The model sees the question as SFT does, in one wording ("Convert 7.2 mile to kilometer."), after one worked
training row of the same unit pair, and writes the reasoning datagen verified (`rationale.write`): the factor, the
product, the answer. docs/RECIPE.md says why this prompt and this form, with the pilots' figures.
"""
from pathlib import Path

from . import loader, lora, rationale
from .base_llm import BaseLLM
from .data import DataError, Dataset, ask as ask_model, checked_question, evaluate, read_rows, rft_data
from .reader import read_question, readable
from .sft import plain_question

MODEL_DIR = Path(__file__).resolve().parent / "rft_model"
TRAINING = lora.Training(epochs=1, learning_rate=1e-3)  # one pass over the rows: datagen writes out as many as the time allows


class RFTModel(BaseLLM):
    """The question in one wording, after one worked training row of its unit pair (where the training set has one):
    the row shows the pair's factor, and the model learns to multiply by it."""

    max_new_tokens = 64

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.shots = {}  # unit pair -> its training rows: (quantity, question, answer)
        for (question, answer), reading, _ in readable(Dataset("train").data, "RFT"):
            if reading.n:
                self.shots.setdefault(reading.units, []).append((reading.n, question, answer))

    def shot(self, question: str) -> str:
        """The first training row of the question's pair at another quantity, worked: "Convert 4 kilogram to gram. 1
        kilogram = 1000 gram. 4 * 1000 = 4000. <answer>4000</answer>\n"; "" where there is none."""
        reading = read_question(question)
        for n, row, answer in self.shots.get(reading.units, []) if reading else []:
            if n != reading.n:
                return f"{plain_question(row)} {rationale.write(read_question(row), answer / n)}\n"
        return ""

    def format_prompt(self, question: str) -> str:
        return self.shot(question) + plain_question(question)


def load(path: str | Path = MODEL_DIR, calculator: bool = False) -> RFTModel:
    """calculator: the decoder writes each result the model sets up (`a * b =`); off, the pure model, as graded."""
    return lora.load_adapter(path, RFTModel, calculator=calculator)


def examples(model: RFTModel, rows: list[list]) -> list[tuple[str, str]]:
    """(prompt, completion) for each [question, answer, reasoning] row: the loss is on the reasoning alone."""
    return [(model.format_prompt(question), " " + reasoning) for question, _, reasoning in rows]


@lora.command(TRAINING)
def train(output_dir: str = str(MODEL_DIR), data: str | None = None, max_question: int = 100, training: lora.Training = TRAINING):
    """Train on the rows of `data`, save the adapter to output_dir, then print the accuracy on the first valid questions.

    Args:
        output_dir: where the adapter goes (tensorboard logs in output_dir/runs)
        data: the [question, answer, reasoning] rows; none: rft.json in the data folder
        max_question: valid questions to evaluate on afterwards (0: none)"""
    lora.check_flags([("max_question", max_question, loader.is_count(max_question, 0), "0 for none, or more")])
    path = Path(data) if data else rft_data()
    if not path.is_file():
        raise loader.CheckpointError(f"no RFT data at {path}: run python -m homework.datagen {path} first")
    rows = [row for row, *_ in readable(read_rows(path, reasoning=True), "RFT")]
    if not rows:
        raise DataError(f"{path} has no row whose question reads as a conversion")
    llm = RFTModel(training.checkpoint, dtype=loader.policy().train_dtype)
    llm, trainer = lora.train(examples(llm, rows), output_dir, training, llm=llm)
    if max_question and trainer.is_world_process_zero():
        evaluate(llm, max_question)


def test(path: str = str(MODEL_DIR), max_question: int = 100, split: str = "valid", calculator: bool = False):
    """Accuracy on the first max_question questions of a split, per category and kind of quantity, and the misses by kind."""
    evaluate(load(path, calculator), max_question, split)


def ask(question: str, path: str = str(MODEL_DIR), show_prompt: bool = False, calculator: bool = False):
    """Answer one question: what the model wrote, the parsed answer and pint's."""
    question = checked_question(question)  # before the model loads
    ask_model(load(path, calculator), question, show_prompt)


def show(index: int = 0, data: str | None = None, checkpoint: str = loader.DEFAULT_CHECKPOINT):
    """Print RFT training example `index` token by token; [brackets] mark the tokens the loss is computed on."""
    data = Path(data) if data else rft_data()
    rows = read_rows(data, reasoning=True)
    if not 0 <= index < len(rows):
        raise DataError(f"{data} has {len(rows)} rows: no row {index}")
    model = RFTModel(checkpoint)
    lora.show_tokens(model.tokenizer, *examples(model, [rows[index][:3]])[0])


if __name__ == "__main__":
    loader.cli({"train": train, "test": test, "ask": ask, "show": show}, {"RFTModel.max_new_tokens": RFTModel.max_new_tokens})
