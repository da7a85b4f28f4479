"""Rejection-sampling fine-tuning: LoRA on the CoT prompt + a sampled, verified rationale (data/rft.json).

    python -m homework.datagen data/rft.json       # first: make the rationales
    python -m homework.rft train                   # trains homework/rft_model, prints the accuracy
    python -m homework.rft train --help            # every flag, with its help line
    python -m homework.rft train --rounds 2        # expert iteration: the trained model samples more rationales
    python -m homework.rft train --rounds 2 --rationalize   # ... with the true answer as a hint while sampling
    python -m homework.rft test                    # evaluates homework/rft_model
    python -m homework.rft test --split reworded   # ... on the same questions asked in other words
    python -m homework.rft test --split offgrid    # ... on quantities no training row asks
    python -m homework.rft test --calculator       # ... with the decoder writing each product (calculator.py)
    python -m homework.rft ask "How many inches in 3 feet?"   # one question; --show_prompt prints the prompt
    python -m homework.rft show                    # a training example, the trained tokens in [brackets]

The RFT model is prompted with the CoT chat (`cot.RFTModel`): worked examples are training questions of the
same unit pair, as written in the training set (the CoT model rewords them; the shipped adapter was trained
on them as written). Training on its own verified rationales under that prompt teaches it to take the
factor from the examples and to multiply it out correctly, which the prompt alone does not.
"""
import os
import tempfile
import time
from pathlib import Path

from . import loader, lora
from .calculator import written_spans
from .cot import RFTModel
from .data import DataError, Dataset, ask as ask_model, checked_question, evaluate, read_rows, rft_data, write_json
from .datagen import report, sample_rationales
from .reader import readable

MODEL_DIR = Path(__file__).resolve().parent / "rft_model"


def load(path: str | Path = MODEL_DIR, calculator: bool = False) -> RFTModel:
    """The RFT model: the CoT prompt, with the LoRA adapter trained on rationales sampled under it.
    calculator: the decoder writes each product the model sets up (`a * b =`); off, the pure model, as graded."""
    return lora.load_adapter(path, RFTModel, calculator=calculator)


def examples_from(model: RFTModel, rows: list[list], calculator: bool = False) -> list[tuple]:
    """(prompt, completion, untrained spans): the question's CoT prompt, then its verified rationale. With
    `calculator`, the results a calculator would write are not trained on (`calculator.written_spans`)."""
    return [(model.format_prompt(q), reasoning, written_spans(reasoning) if calculator else []) for q, _, reasoning in rows]


TRAINING = lora.Training(epochs=3)  # from a fresh LoRA on every row of data/rft.json


@lora.command(TRAINING)
def train(
    output_dir: str = str(MODEL_DIR),
    data: str | None = None,
    rounds: int = 1,
    oversample: int = 8,
    temperature: float = 0.7,
    resample_limit: int | None = None,
    rationalize: bool = False,
    max_question: int = 100,
    init_adapter: str | None = None,
    calculator: bool = False,
    training: lora.Training = TRAINING,
):
    """Train on `data` and save the adapter to output_dir.

    With rounds > 1 (expert iteration), the model of each round but the last samples rationales for the
    training questions that still lack one; the verified ones join the data, saved as DATA.roundN.json,
    and the next round trains from the base model on all of them. The last round's model is kept.

    Args:
        output_dir: where the adapter goes (tensorboard logs in output_dir/runs)
        data: the [question, answer, reasoning] rows; none: rft.json in the data folder (data.rft_data)
        rounds: rounds of expert iteration
        oversample: samples per uncovered question between rounds
        temperature: sampling temperature between rounds
        resample_limit: at most this many uncovered questions sampled per round (CPU budgets)
        rationalize: the sampling prompts state the true answer (datagen --rationalize)
        max_question: valid questions to evaluate on after each round (0: none)
        init_adapter: train on from this adapter (homework/rft_model, say) instead of a fresh LoRA
        calculator: for a model that will run with the calculator: the results it writes are not learned"""
    lora.check_flags([("rounds", rounds, loader.is_count(rounds, 1), "1 or more"),
                      ("max_question", max_question, loader.is_count(max_question, 0), "0 for none, or more")])
    path = Path(data) if data else rft_data()
    if not path.is_file():
        raise loader.CheckpointError(f"no RFT data at {path}: run python -m homework.datagen {path} first")
    if rounds > 1 and init_adapter:
        raise loader.CheckpointError("--init_adapter trains one round: each round of --rounds starts a fresh LoRA")
    if rounds > 1 and int(os.environ.get("WORLD_SIZE", 1)) > 1:
        raise loader.CheckpointError("--rounds > 1 runs in one process: the sampling between rounds is not distributed")
    rows = [row for row, *_ in readable(read_rows(path, reasoning=True), "RFT")]
    model = RFTModel(training.checkpoint, dtype=loader.policy().train_dtype, calculator=calculator)  # loaded once; each round trains a fresh LoRA on it
    for round_ in range(1, rounds + 1):
        start, last = time.time(), round_ == rounds
        with tempfile.TemporaryDirectory() as sampler_dir:  # only the last round's adapter is kept
            _, trainer = lora.train(examples_from(model, rows, calculator), output_dir if last else sampler_dir, training,
                                    llm=model, init_adapter=init_adapter)
        if not trainer.is_world_process_zero():
            continue
        line = f"round {round_}: trained on {len(rows)} rationales"
        if max_question:
            result = evaluate(model, max_question, show_misses=5 if last else 0)
            line += f", accuracy={result.accuracy:.2f} answer_rate={result.answer_rate:.2f}"
        if not last:
            rows, sampled = resample(model, rows, oversample, temperature, resample_limit, rationalize)
            write_json(path.with_name(f"{path.stem}.round{round_ + 1}.json"), rows)
            line += f"; {sampled}, {len(rows)} rationales now"
            model.model = model.model.unload()  # the base weights, without this round's LoRA, for the next round
        print(f"{line} ({time.time() - start:.0f} s)")


def resample(model: RFTModel, rows: list[list], oversample: int, temperature: float, limit: int | None, rationalize: bool) -> tuple[list[list], str]:
    """rows, and a rationale for each training question they lack that the model gets right; and a line saying so."""
    covered = {q for q, _, _ in rows}
    missing = [(q, a) for (q, a), *_ in readable(Dataset("train").data, "RFT") if q not in covered][:limit]
    results = sample_rationales(model, missing, oversample, temperature, rationalize=rationalize)
    stats = report(results, oversample)
    rows = rows + [[q, a, r] for q, (a, r, _) in results.items() if r is not None]
    return rows, f"it sampled {len(missing)} uncovered questions: yield {stats['yield']:.3f}"


def test(path: str = str(MODEL_DIR), max_question: int = 100, split: str = "valid", calculator: bool = False):
    """Accuracy on the first max_question questions of a split, per category and kind of quantity, and the misses by kind."""
    evaluate(load(path, calculator), max_question, split)


def ask(question: str, path: str = str(MODEL_DIR), show_prompt: bool = False, calculator: bool = False):
    """Answer one question: what the model wrote, the parsed answer and pint's."""
    question = checked_question(question)  # before the model loads
    ask_model(load(path, calculator), question, show_prompt)


def show(index: int = 0, data: str | None = None, checkpoint: str = loader.DEFAULT_CHECKPOINT):
    """Print RFT training example `index` (its CoT prompt + rationale) token by token; [brackets] mark
    the tokens the loss is computed on."""
    data = Path(data) if data else rft_data()
    rows = read_rows(data, reasoning=True)
    if not 0 <= index < len(rows):
        raise DataError(f"{data} has {len(rows)} rows: no row {index}")
    question, _, reasoning = rows[index][:3]
    model = RFTModel(checkpoint)
    lora.show_tokens(model.tokenizer, model.format_prompt(question), reasoning)


if __name__ == "__main__":
    loader.cli({"train": train, "test": test, "ask": ask, "show": show},
               {"RFTModel.style": RFTModel.style, "RFTModel.max_new_tokens": RFTModel.max_new_tokens})
