"""Rejection-sampling fine-tuning: SFT's LoRA training on question + reasoning (data/rft.json, from datagen).

    python -m homework.datagen data/rft.json       # first: sample and verify the reasoning
    python -m homework.rft train                   # trains homework/rft_model, prints the accuracy
    python -m homework.rft train --help            # every flag, with its help line
    python -m homework.rft test                    # evaluates homework/rft_model
    python -m homework.rft test --split offgrid    # ... on quantities no training row asks
    python -m homework.rft test --calculator       # ... with the decoder writing each product (engine/calculator.py)
    python -m homework.rft ask "How many inches in 3 feet?"
    python -m homework.rft show                    # a training example, the trained tokens in [brackets]

The prompt is the question as SFT asks it ("Convert 7.2 mile to kilometer."); the model learns to write the reasoning
datagen verified, the factor and the product to 3 significant figures: "1 mile = 1.61 kilometer. 7.2 * 1.61 = 11.6.
<answer>11.6</answer>". docs/RECIPE.md says why this prompt and this form.
"""
from pathlib import Path

from . import adapters, loader
from .cli import check_flags, check_training, checked_question, checked_test, cli, is_count
from .data import DataError, read_rows, rft_data
from .evaluation import ask as ask_model, evaluate
from .sft import SFTModel, show_tokens, train_lora
from .units.reader import readable

MODEL_DIR = Path(__file__).resolve().parent / "rft_model"


class RFTModel(SFTModel):
    """SFT's prompt ("Convert 7.2 mile to kilometer."); what differs is what the model learned to write after it."""


def load(path: str | Path = MODEL_DIR, calculator: bool = False) -> RFTModel:
    """calculator: the decoder writes each product the model sets up (`a * b =`); off, the pure model, as graded."""
    return adapters.load(path, RFTModel, calculator=calculator)


def examples(model: RFTModel, rows: list[list]) -> list[tuple[str, str]]:
    """(prompt, completion) for each [question, answer, reasoning] row: the loss is on the reasoning alone."""
    return [(model.format_prompt(question), " " + reasoning) for question, _, reasoning in rows]


def read_data(data: str | None) -> list[list]:
    """The [question, answer, reasoning] rows of `data` (none: rft.json in the data folder) that read as conversions."""
    path = Path(data) if data else rft_data()
    if not path.is_file():
        raise DataError(f"no RFT data at {path}: run python -m homework.datagen {path} first")
    rows = [row for row, *_ in readable(read_rows(path, reasoning=True), "RFT")]
    if not rows:
        raise DataError(f"{path} has no row whose question reads as a conversion")
    return rows


def train(output_dir: str = str(MODEL_DIR), data: str | None = None, max_question: int = 100,
          checkpoint: str = loader.DEFAULT_CHECKPOINT, learning_rate: float = 5e-4, epochs: float = 2.5,
          batch_size: int = 8, max_steps: int = -1, lora_r: int | None = None, lora_alpha: int | None = None,
          lora_dropout: float = 0.0, seed: int = 0, curve_every: int = 0):
    """Train on the rows of `data`, save the adapter to output_dir, then print the accuracy on the first valid
    questions.

    Args:
        output_dir: where the adapter goes (tensorboard logs in output_dir/runs)
        data: the [question, answer, reasoning] rows; none: rft.json in the data folder
        max_question: valid questions to evaluate on afterwards (0: none)
        curve_every: score the model every this many steps on valid and offgrid (0: never), into curve.json"""
    rows = read_data(data)  # before the output folder is made
    check_training(output_dir, learning_rate, epochs, batch_size, max_steps, lora_r, lora_dropout, seed, max_question)
    check_flags([("curve_every", curve_every, is_count(curve_every, 0), "0 for none, or more")])
    llm = RFTModel(checkpoint, dtype=loader.policy().train_dtype)
    trainer = train_lora(llm, examples(llm, rows), output_dir, learning_rate=learning_rate, epochs=epochs,
                         batch_size=batch_size, max_steps=max_steps, lora_r=lora_r, lora_alpha=lora_alpha,
                         lora_dropout=lora_dropout, seed=seed, curve_every=curve_every)
    if max_question and trainer.is_world_process_zero():
        evaluate(llm, max_question)
    return trainer.throughput


def test(path: str = str(MODEL_DIR), max_question: int = 100, split: str = "valid", calculator: bool = False):
    """Accuracy on the first max_question questions of a split, per category and kind of quantity, and the misses."""
    max_question, split = checked_test(max_question, split)  # before the model loads
    evaluate(load(path, calculator), max_question, split)


def ask(question: str, path: str = str(MODEL_DIR), show_prompt: bool = False, calculator: bool = False):
    """Answer one question: what the model wrote, the parsed answer and pint's."""
    question = checked_question(question)  # before the model loads
    ask_model(load(path, calculator), question, show_prompt)


def show(index: int = 0, data: str | None = None, checkpoint: str = loader.DEFAULT_CHECKPOINT):
    """Print RFT training example `index` token by token; [brackets] mark the tokens the loss is computed on."""
    rows = read_data(data)
    if not 0 <= index < len(rows):
        raise DataError(f"the RFT data has {len(rows)} rows: no row {index}")
    model = RFTModel(checkpoint)
    show_tokens(model.tokenizer, *examples(model, [rows[index][:3]])[0])


if __name__ == "__main__":
    cli({"train": train, "test": test, "ask": ask, "show": show}, {"RFTModel.max_new_tokens": RFTModel.max_new_tokens})
