"""Rejection-sampling fine-tuning: LoRA on question + a sampled, verified rationale (data/rft.json).

    python -m homework.datagen data/rft.json       # first: make the rationales
    python -m homework.rft train                   # trains homework/rft_model, prints the accuracy
    python -m homework.rft train --rounds 3        # expert iteration: the trained model samples more rationales, retrain
    python -m homework.rft test                    # evaluates homework/rft_model
"""
import json
from pathlib import Path

from . import loader, sft
from .base_llm import BaseLLM
from .data import DATA_DIR, Dataset, evaluate

MODEL_DIR = Path(__file__).resolve().parent / "rft_model"


class RFTModel(BaseLLM):
    """Prompted with the bare question, as it was trained; it writes its reasoning, then the answer."""

    max_new_tokens = 64


def load(path: str | Path = MODEL_DIR) -> RFTModel:
    return sft.load_adapter(path, RFTModel)


def examples_from(rows: list[list], mix_direct: bool) -> list[tuple[str, str]]:
    """(prompt, completion) pairs: every rationale, plus, if mix_direct, a direct answer for each training
    question that has no rationale yet, so no question goes unseen."""
    examples = [(q, " " + reasoning) for q, _, reasoning in rows]
    if mix_direct:
        covered = {q for q, _, _ in rows}
        examples += [(q, sft.answer_text(a)) for q, a in Dataset("train").data if q not in covered]
    return examples


def train(
    output_dir: str = str(MODEL_DIR),
    data: str = str(DATA_DIR / "rft.json"),
    rounds: int = 1,
    oversample: int = 8,
    temperature: float = 0.7,
    mix_direct: bool = True,
    resample_limit: int | None = None,  # at most this many uncovered questions sampled per round (CPU budgets)
    max_question: int = 100,
    checkpoint: str = loader.DEFAULT_CHECKPOINT,
    **train_kwargs,
):
    """Train on `data`; each further round, the model just trained samples rationales for the training
    questions that still lack one, the correct ones join the data, and training starts again from the base."""
    from .datagen import report, sample_rationales, write_json_atomic

    path = Path(data)
    if not path.is_file():
        raise loader.CheckpointError(f"no RFT data at {path}: run python -m homework.datagen {path} first")
    rows = json.loads(path.read_text())
    llm = None  # the model trained in the previous round samples the next round's rationales
    for round_ in range(1, rounds + 1):
        if round_ > 1:
            covered = {q for q, _, _ in rows}
            missing = [(q, a) for q, a in Dataset("train").data if q not in covered][:resample_limit]
            results = sample_rationales(llm, missing, oversample, temperature)
            stats = report(results, oversample)
            rows += [[q, a, r] for q, (a, r, _) in results.items() if r is not None]
            write_json_atomic(path.with_name(f"{path.stem}.round{round_}.json"), rows)
            print(f"round {round_}: yield on the {len(missing)} uncovered questions {stats['yield']:.3f}, {len(rows)} rationales in all")
        llm, trainer = sft.train_model(examples_from(rows, mix_direct), output_dir, checkpoint, model_class=RFTModel, **train_kwargs)
        if max_question and trainer.is_world_process_zero():
            result = evaluate(llm, max_question, show_misses=3 if round_ < rounds else 5)
            print(f"round {round_}: accuracy={result.accuracy:.2f} answer_rate={result.answer_rate:.2f} rationales={len(rows)}")


def test(path: str = str(MODEL_DIR), max_question: int = 100):
    evaluate(load(path), max_question)


if __name__ == "__main__":
    loader.cli({"train": train, "test": test, "load": load})
