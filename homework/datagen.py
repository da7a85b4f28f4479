"""Rejection sampling: sample CoT rationales for the training questions and keep a correct one.

    python -m homework.datagen data/rft.json                          # oversample=10, temperature=0.6
    python -m homework.datagen data/rft.json --max_question 200       # a smaller run
    python -m homework.datagen data/rft.json --extend --adapter homework/rft_model --oversample 4
                                      # expert iteration by hand: the RFT model samples the uncovered questions
    python -m homework.datagen data/rft.json --extend --adapter homework/rft_model --rationalize
                                      # the same, with the true answer as a hint in the prompt (STaR's rationalization)
    python -m homework.datagen data/rft.json --extend --adapter homework/rft_model --rationalize --more_wordings 1
                                      # ... and each training question asked once more in other words
    python -m homework.datagen data/rft.json --extend --adapter homework/rft_model --rationalize --grid --thousands 3
                                      # ... and each unit pair at the small quantities no row asks, and at 3 thousands
    python -m homework.datagen data/rft.json --extend --adapter homework/rft_model --offgrid 2 --calculator
                                      # each pair at 2 quantities of each off-grid kind (3.7, 0.35, 1.75, 45), the
                                      # decoder writing each product the sampler sets up
    torchrun --nproc_per_node 2 -m homework.datagen data/rft.json     # two processes (GPUs, or CPU sockets) share
                                      # the questions; accelerate launch -m homework.datagen ... does the same

Rows are [question, answer, reasoning]. Progress is saved atomically about every 30 s of sampling in
OUTPUT.partial; a killed run started again resumes from there. Under torchrun or accelerate launch, each process
(rank) samples every WORLD_SIZE-th question into OUTPUT.partial.RANKofWORLD_SIZE and marks it done; rank 0 then
writes OUTPUT from them all in question order. A killed run resumes with the same number of processes.
"""
import json
import math
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import torch
from tqdm import tqdm

from . import loader
from .base_llm import parse_answer
from .cot import RFTModel
from .data import DATA_DIR, Dataset, data_dir, is_answer_valid, rft_data, write_json
from .generator import OFF_GRID, THOUSANDS, conversions, on_grid, reword
from .lora import load_adapter
from .reader import read_question, readable

SAMPLER_CHECKPOINT = "HuggingFaceTB/SmolLM2-1.7B-Instruct"
_EQUATION = re.compile(r"(-?[\d,]*\.?\d+(?:[eE][-+]?\d+)?)\s*([*/x×])\s*(-?[\d,]*\.?\d+(?:[eE][-+]?\d+)?)\s*=\s*(-?[\d,]*\.?\d+(?:[eE][-+]?\d+)?)")


def _num(text: str) -> float:
    return float(text.replace(",", ""))


def arithmetic_holds(text: str, answer: float, relative_tolerance: float = 0.001) -> bool:
    """The text works the answer out: it states at least one "a * b = c" or "a / b = c", every one is
    true, and the last result is the answer. This rejects a lucky answer that the reasoning doesn't
    support (though it is within 5% of the truth), and a bare answer with no reasoning at all."""
    results = []
    for a, op, b, c in _EQUATION.findall(text.split("<answer>")[0]):
        a, b, c = _num(a), _num(b), _num(c)
        value = a / b if op == "/" and b != 0 else a * b
        if not math.isclose(value, c, rel_tol=relative_tolerance):
            return False
        results.append(c)
    return bool(results) and math.isclose(results[-1], answer, rel_tol=relative_tolerance)


STATEMENT = re.compile(r"\s*(\d[\d,]*\.?\d*)\s*[A-Za-z][^=]*?=\s*(\d[\d,]*\.?\d*(?:[eE][-+]?\d+)?)\s*[A-Za-z]")  # "1000 g = 35.27 oz"


def states_the_factor(text: str, factor: float, relative_tolerance: float = 0.01) -> bool:
    """The text opens with a true statement of the factor (how many of the target unit make one of the
    source): "1 kg = 1000 g." or "1000 g = 35.27 oz." for 0.03527. Arithmetic alone lets a false one through
    ("2 miles = 5280 feet. 2 * 5280 = 10560."; 404 of the 5137 rows of data/rft.json, kept by the arithmetic alone, state none or a false one)."""
    match = STATEMENT.match(text)
    return bool(match) and _num(match.group(1)) > 0 and math.isclose(_num(match.group(2)) / _num(match.group(1)), factor, rel_tol=relative_tolerance)


def select(correct_answer: float, completions: list[str], quantity: float | None = None) -> str | None:
    """The first completion graded correct (by the grader's own check) that works its answer out, or None.
    With the question's quantity, it must also open with a true statement of the factor (`states_the_factor`)."""
    for completion in completions:
        answer = parse_answer(completion)
        if (is_answer_valid(answer, correct_answer) and arithmetic_holds(completion, answer)
                and (not quantity or states_the_factor(completion, correct_answer / quantity))):
            return completion.strip()
    return None


def sample_rationales(model, questions: list[tuple[str, float]], oversample: int, temperature: float, progress: Path | None = None,
                      chunk: int | None = None, rationalize: bool = False, save_every: float = 30.0, desc: str = "datagen") -> dict:
    """{question: [correct_answer, reasoning or None, number of correct samples]} for every question, resumable.

    rationalize: prompt with `format_prompt(q, hint=answer)` (see generate_dataset). Progress is saved after
    each chunk of questions; within a chunk, generation keeps its batch full. chunk None: the first chunk fills a
    CPU batch (64 rows), and each next one is sized from the last one's pace to take about `save_every` seconds,
    so a kill loses at most about that much sampling on any machine."""
    done = json.loads(progress.read_text()) if progress and progress.exists() else {}
    todo = [(q, a) for q, a in questions if q not in done]
    size, i = chunk or -(-64 // oversample), 0
    with tqdm(total=len(questions), initial=len(questions) - len(todo), desc=desc) as bar:
        while i < len(todo):
            batch, start = todo[i : i + size], time.perf_counter()
            i += len(batch)
            prompts = [model.format_prompt(q, hint=a) if rationalize else model.format_prompt(q) for q, a in batch]
            samples = model.batched_generate(prompts, num_return_sequences=oversample, temperature=temperature)
            for (q, a), completions in zip(batch, samples):
                n_correct = sum(is_answer_valid(parse_answer(c), a) for c in completions)
                done[q] = [a, select(a, completions, (reading := read_question(q)) and reading.n), n_correct]
            if progress:
                write_json(progress, done)
            if chunk is None:
                per_question = max(time.perf_counter() - start, 1e-6) / len(batch)
                size = max(1, min(1024, int(save_every / per_question)))
            bar.update(len(batch))
            kept = sum(v[1] is not None for v in done.values())
            bar.set_postfix(yield_=f"{kept / len(done):.2f}")
    return done


def rank_and_world() -> tuple[int, int]:
    """(this process's rank, the number of processes): what torchrun and accelerate launch set; (0, 1) alone."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def shard_progress(output: Path, rank: int, world: int) -> Path:
    """Where one rank keeps its progress: OUTPUT.partial alone, OUTPUT.partial.RANKofWORLD beside other ranks."""
    return output.with_name(f"{output.name}.partial" + (f".{rank}of{world}" if world > 1 else ""))


def gather(output: Path, questions: list[tuple[str, float]], world: int, poll: float = 5.0) -> dict:
    """Rank 0, once its own shard is done: wait until every rank's progress holds each question of its shard, then
    every result in the order of `questions`, as one process would have them. A rank that dies ends the launch (and
    rank 0 with it); a progress file from another run lacks this run's questions, so it is never taken for done."""
    shards = [(shard_progress(output, r, world), questions[r::world]) for r in range(world)]
    results, waiting = {}, False
    while True:
        for path, shard in shards:
            if not all(q in results for q, _ in shard) and path.exists():
                results.update(json.loads(path.read_text()))  # written atomically (write_json)
        if all(q in results for q, _ in questions):
            return {q: results[q] for q, _ in questions}
        if not waiting:
            print("waiting for the other ranks to finish", file=sys.stderr, flush=True)
            waiting = True
        time.sleep(poll)


def asks(question: str, conversions: set) -> bool:
    """Whether the question converts one of these (unit pair, quantity)s."""
    return bool(conversions) and (reading := read_question(question)) is not None and (reading.units, reading.n) in conversions


def report(results: dict, oversample: int) -> dict:
    """Yield (a rationale kept), pass@1 and pass@k, where k = oversample."""
    n = max(len(results), 1)
    stats = {
        "yield": sum(r[1] is not None for r in results.values()) / n,
        "pass@1": sum(r[2] for r in results.values()) / (n * oversample),
        f"pass@{oversample}": sum(r[2] > 0 for r in results.values()) / n,
    }
    print(" ".join(f"{k}={v:.3f}" for k, v in stats.items()) + f" ({len(results)} questions)")
    return stats


def questions_to_ask(asked: list[list], max_question: int | None, seed: int, more_wordings: int, grid: bool, thousands: int,
                     offgrid: int) -> list[list]:
    """The [question, answer] rows to sample for (see generate_dataset): the training questions, their rewordings and
    the grids, skipping the conversions of the rows `asked` already; never a valid question, nor an off-grid one."""
    train = [row for row, *_ in readable(Dataset("train").data[:max_question], "datagen")]
    train += reword(train, seed, more_wordings)  # none when more_wordings is 0
    train += on_grid(train + asked, seed=seed) if grid else []
    train += on_grid(train + asked, THOUSANDS, seed, per_pair=thousands) if thousands else []
    for quantities in OFF_GRID.values() if offgrid else []:
        train += on_grid(train + asked, quantities, seed, per_pair=offgrid)
    held_out = {q for q, _ in Dataset("valid").data}  # a rewording may not ask a validation question
    off_grid = conversions(sorted({DATA_DIR / "offgrid.json", data_dir() / "offgrid.json"}))  # nor an off-grid conversion (each file read once)
    return [(q, a) for q, a in train if q not in held_out and not asks(q, off_grid)]


def generate_dataset(
    output_json: str | None = None,
    oversample: int = 10,
    temperature: float = 0.6,
    max_question: int | None = None,
    checkpoint: str = SAMPLER_CHECKPOINT,
    seed: int = 0,
    adapter: str | None = None,
    extend: bool = False,
    rationalize: bool = False,
    more_wordings: int = 0,
    grid: bool = False,
    thousands: int = 0,
    offgrid: int = 0,
    calculator: bool = False,
    save_every: float = 30.0,
):
    """Sample rationales for the training questions and write the verified ones to output_json. No question is asked
    that converts what an evaluation set asks: a valid question, or the unit pair and quantity of a row of
    data/offgrid.json.

    Args:
        output_json: the rows' file; none: rft.json in the data folder. Progress goes to OUTPUT.partial meanwhile
        oversample: samples per question
        temperature: sampling temperature
        max_question: only the first this many training questions; none: all of them
        checkpoint: the sampler's base model (hub name, local folder or embedded)
        seed: of the sampling and of the rewordings and grids
        adapter: sample with a trained RFT model (homework/rft_model, say) instead of the base model
        extend: keep the rows already in output_json and sample only what they don't cover; with --adapter, one round of expert iteration by hand
        rationalize: each prompt states the true answer as a hint (STaR); a kept rationale must still work it out, and is trained on without the hint
        more_wordings: each training question also asked this many times in other words (generator.reword: other phrasings, spellings, quantities)
        grid: each unit pair also asked at every quantity 1 to 10 and 0.5 to 9.5 that no row asks (generator.on_grid)
        thousands: each unit pair also asked at this many quantities from 1000 to 9500 that no row asks, counted in thousands in the prompt
        offgrid: each unit pair also asked at this many quantities of each kind off the grid (3.7, 0.35, 1.75, 45), never one of data/offgrid.json
        calculator: the decoder writes each product the sampler sets up; the verifier still checks the factor and the answer
        save_every: seconds of sampling between saves of the progress (the chunk of questions is sized to it)"""
    if max_question is not None and not loader.is_count(max_question):
        raise loader.CheckpointError(f"--max_question takes a count of 1 or more (or none: every training question), not {max_question!r}")
    rank, world = rank_and_world()
    torch.manual_seed(seed + rank)  # an uninterrupted run repeats itself; a resumed one continues with a fresh stream

    output = Path(output_json) if output_json else rft_data()
    try:  # known before the model loads, not after the first chunk's sampling
        output.parent.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=output.parent).close()
    except OSError as e:
        raise loader.CheckpointError(f"can't write {output}: {e.strerror or e}") from None
    progress = shard_progress(output, rank, world)
    rows = json.loads(output.read_text()) if extend and output.exists() else []
    covered = {q for q, _, _ in rows}
    questions = [(q, a) for q, a in questions_to_ask([row[:2] for row in rows], max_question, seed, more_wordings, grid, thousands, offgrid)
                 if q not in covered]
    if world > 1 and torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)))  # "cuda" is this rank's own GPU
    # sampled as RFT will prompt
    model = load_adapter(adapter, RFTModel, calculator=calculator) if adapter else RFTModel(checkpoint, calculator=calculator)
    results = sample_rationales(model, questions[rank::world], oversample, temperature, progress, rationalize=rationalize,
                                save_every=save_every, desc="datagen" if world == 1 else f"datagen, rank {rank} of {world}")
    if rank:
        return  # rank 0 writes the output from every rank's progress
    if world > 1:
        results = gather(output, questions, world)
    report(results, oversample)
    rows += [[q, a, reasoning] for q, (a, reasoning, _) in results.items() if reasoning is not None]
    write_json(output, rows)
    for r in range(world):  # absent when there was nothing left to sample
        shard_progress(output, r, world).unlink(missing_ok=True)
    print(f"wrote {len(rows)} rows to {output}" + (f" ({len(covered)} kept, {len(rows) - len(covered)} new)" if extend else ""))


if __name__ == "__main__":
    loader.cli(generate_dataset, {"RFTModel.style": RFTModel.style})
