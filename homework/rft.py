"""Rejection-sampling fine-tuning: LoRA on question + a sampled, verified rationale (data/rft.json).

    python -m homework.datagen data/rft.json       # first: make the rationales
    python -m homework.rft train                   # trains homework/rft_model, prints the accuracy
    python -m homework.rft train --rounds 2        # expert iteration: a model trained on the rationales samples more
    python -m homework.rft test                    # evaluates homework/rft_model
"""
import json
import os
import tempfile
import time
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
    sampler_epochs: float = 10,
    resample_limit: int | None = None,  # at most this many uncovered questions sampled per round (CPU budgets)
    max_question: int = 100,
    checkpoint: str = loader.DEFAULT_CHECKPOINT,
    **train_kwargs,
):
    """Train on `data` and save the adapter to output_dir.

    With rounds > 1 (expert iteration), each round but the last trains a sampler on the rationales alone
    (a model also trained on direct answers would answer those very questions directly), which samples
    rationales for the training questions that still lack one; the verified ones join the data, saved as
    DATA.roundN.json. The last round trains the model that is kept, from the base, on all the rationales."""
    from .datagen import report, sample_rationales, write_json_atomic

    path = Path(data)
    if not path.is_file():
        raise loader.CheckpointError(f"no RFT data at {path}: run python -m homework.datagen {path} first")
    if rounds > 1 and int(os.environ.get("WORLD_SIZE", 1)) > 1:
        raise loader.CheckpointError("--rounds > 1 runs in one process: the sampling between rounds is not distributed")
    rows = json.loads(path.read_text())
    for round_ in range(1, rounds + 1):
        start, last = time.time(), round_ == rounds
        kwargs = train_kwargs if last else {**train_kwargs, "epochs": sampler_epochs}
        with tempfile.TemporaryDirectory() as sampler_dir:  # the sampler's adapter is not kept
            examples = examples_from(rows, mix_direct and last)
            llm, trainer = sft.train_model(examples, output_dir if last else sampler_dir, checkpoint, model_class=RFTModel, **kwargs)
        if not trainer.is_world_process_zero():
            continue
        line = f"round {round_}: trained on {len(rows)} rationales" + ("" if last else " alone (the sampler)")
        if max_question:
            result = evaluate(llm, max_question, show_misses=5 if last else 0)
            line += f", accuracy={result.accuracy:.2f} answer_rate={result.answer_rate:.2f}"
        if not last:
            covered = {q for q, _, _ in rows}
            missing = [(q, a) for q, a in Dataset("train").data if q not in covered][:resample_limit]
            results = sample_rationales(llm, missing, oversample, temperature)
            stats = report(results, oversample)
            rows = rows + [[q, a, r] for q, (a, r, _) in results.items() if r is not None]
            write_json_atomic(path.with_name(f"{path.stem}.round{round_ + 1}.json"), rows)
            line += f"; it sampled {len(missing)} uncovered questions: yield {stats['yield']:.3f}, {len(rows)} rationales now"
        print(f"{line} ({time.time() - start:.0f} s)")


def test(path: str = str(MODEL_DIR), max_question: int = 100):
    evaluate(load(path), max_question)


if __name__ == "__main__":
    loader.cli({"train": train, "test": test, "load": load})
