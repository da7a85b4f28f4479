"""Rejection sampling: sample k CoT completions per training question, keep a correct one, write data/rft.json.

    python -m homework.datagen data/rft.json                       # 10 samples per question at temperature 0.6
    python -m homework.datagen data/rft.json --max_question 50 --spread 200 --overwrite   # a smaller run
    torchrun --nproc_per_node 2 -m homework.datagen data/rft.json  # two processes (GPUs, or CPU sockets) share the questions

1. Sample: the CoT model, with the calculator on, writes `oversample` completions for each training question whose
   conversion no evaluation set asks.
2. Keep: the first completion graded correct that opens with the true factor ("1 mile = 1.609 kilometer."). Its
   reasoning is written out at that factor (`rationale.write`) and verified step by step (`rationale.holds`).
3. Write out: `--spread` more questions of our generator's, at quantities of every digit length and decimal
   position (generator.spread), each at the factor a kept sample states for its unit pair. Sampling them would take
   the same factor from the same prompt, at a second a question on a CPU.

Rows are [question, answer, reasoning]. Progress is saved atomically about every 30 s in OUTPUT.partial; a killed run
started again resumes from there. Under torchrun or accelerate launch each process (rank) samples every
WORLD_SIZE-th question into OUTPUT.partial.RANKofWORLD_SIZE; rank 0 then writes OUTPUT from them all in question order.
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

from . import loader, rationale
from .base_llm import parse_answer
from .cot import CoTModel
from .data import DATA_DIR, Dataset, data_dir, is_answer_valid, rft_data, write_json
from .generator import conversions, spread
from .reader import read_question, readable

STATEMENT = re.compile(r"\s*(\d[\d,]*\.?\d*)\s*[A-Za-z][^=]*?=\s*(\d[\d,]*\.?\d*(?:[eE][-+]?\d+)?)\s*[A-Za-z]")  # "1000 g = 35.27 oz"


def _num(text: str) -> float:
    return float(text.replace(",", ""))


def states_the_factor(text: str, factor: float, relative_tolerance: float = 0.01) -> bool:
    """The text opens with a true statement of the factor (how many of the target unit make one of the
    source): "1 kg = 1000 g." or "1000 g = 35.27 oz." for 0.03527."""
    match = STATEMENT.match(text)
    return bool(match) and _num(match.group(1)) > 0 and math.isclose(_num(match.group(2)) / _num(match.group(1)), factor, rel_tol=relative_tolerance)


def stated_factor(text: str) -> float | None:
    match = STATEMENT.match(text)
    return _num(match.group(2)) / _num(match.group(1)) if match and _num(match.group(1)) > 0 else None


def select(question: str, correct_answer: float, completions: list[str]) -> str | None:
    """The reasoning of the first completion that is graded correct (the grader's own check) and opens with the true
    factor, written out at that factor (`rationale.write`) and verified step by step; None if no completion is."""
    reading = read_question(question)
    if reading is None or not reading.n:
        return None
    for completion in completions:
        if is_answer_valid(parse_answer(completion), correct_answer) and states_the_factor(completion, correct_answer / reading.n):
            reasoning = rationale.write(reading, stated_factor(completion))
            if rationale.holds(question, reasoning, correct_answer):
                return reasoning
    return None


def written_out(rows: list[list], questions: list[tuple[str, float]]) -> list[list]:
    """[question, answer, reasoning] for each of `questions` whose unit pair a kept row states a factor for: that
    factor, sampled and verified, written out at the question's quantity (and verified again)."""
    factors = {}
    for question, _, reasoning in rows:
        factors.setdefault(read_question(question).units, rationale.stated_factor(reasoning))
    out = []
    for question, answer in questions:
        reading = read_question(question)
        if reading.units in factors and rationale.holds(question, reasoning := rationale.write(reading, factors[reading.units]), answer):
            out.append([question, answer, reasoning])
    return out


def sample_rationales(model, questions: list[tuple[str, float]], oversample: int, temperature: float, progress: Path | None = None,
                      chunk: int | None = None, save_every: float = 30.0, desc: str = "datagen") -> dict:
    """{question: [correct_answer, reasoning or None, number of correct samples]} for every question, resumable.

    Progress is saved after each chunk of questions; within a chunk, generation keeps its batch full. chunk None: the
    first chunk fills a CPU batch (64 rows), and each next one is sized from the last one's pace to take about
    `save_every` seconds, so a kill loses at most about that much sampling on any machine."""
    done = json.loads(progress.read_text()) if progress and progress.exists() else {}
    todo = [(q, a) for q, a in questions if q not in done]
    size, i = chunk or -(-64 // oversample), 0
    with tqdm(total=len(questions), initial=len(questions) - len(todo), desc=desc) as bar:
        while i < len(todo):
            batch, start = todo[i : i + size], time.perf_counter()
            i += len(batch)
            samples = model.batched_generate([model.format_prompt(q) for q, _ in batch], num_return_sequences=oversample,
                                             temperature=temperature)
            for (q, a), completions in zip(batch, samples):
                n_correct = sum(is_answer_valid(parse_answer(c), a) for c in completions)
                done[q] = [a, select(q, a, completions), n_correct]
            if progress:
                write_json(progress, done)
            if chunk is None:
                per_question = max(time.perf_counter() - start, 1e-6) / len(batch)
                size = max(1, min(1024, int(save_every / per_question)))
            bar.update(len(batch))
            bar.set_postfix(yield_=f"{sum(v[1] is not None for v in done.values()) / len(done):.2f}")
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


def held_out() -> set:
    """(unit pair, quantity) of every question of the evaluation sets, ours and those in HOMEWORK_DATA."""
    folders = sorted({DATA_DIR, data_dir()})
    return conversions([folder / f"{split}.json" for folder in folders for split in ("valid", "reworded", "offgrid")])


def questions_to_ask(max_question: int | None, spread_questions: int, seed: int) -> tuple[list, list]:
    """(the training questions to sample, `spread_questions` of the generator's to write out); none converts what an
    evaluation set asks."""
    exclude = held_out()
    train = [row for row, reading, _ in readable(Dataset("train").data[:max_question], "datagen")
             if (reading.units, reading.n) not in exclude]
    return [tuple(row) for row in train], [tuple(row) for row in spread(spread_questions, seed, exclude)] if spread_questions else []


def generate_dataset(
    output_json: str | None = None,
    oversample: int = 10,
    temperature: float = 0.6,
    max_question: int | None = None,
    spread: int = 2100,
    checkpoint: str = loader.DEFAULT_CHECKPOINT,
    seed: int = 0,
    overwrite: bool = False,
    save_every: float = 30.0,
):
    """Sample `oversample` CoT completions per question and write the verified reasoning to output_json.

    Args:
        output_json: the rows' file; none: rft.json in the data folder. Progress goes to OUTPUT.partial meanwhile
        oversample: samples per question
        temperature: sampling temperature, above 0
        max_question: only the first this many training questions; none: all of them
        spread: this many more questions of the generator's, at quantities of every digit length, each written out at
            the factor a kept sample states for its unit pair (0: none)
        checkpoint: the sampler's base model (hub name, local folder or embedded)
        seed: of the sampling and of the generator's questions
        overwrite: replace an existing output_json (without it, an existing file is refused)
        save_every: seconds of sampling between saves of the progress (the chunk of questions is sized to it)"""
    loader_checks = [("oversample", oversample, loader.is_count(oversample), "a count of 1 or more"),
                     ("spread", spread, loader.is_count(spread, 0), "0 for none, or more"),
                     ("temperature", temperature, isinstance(temperature, (int, float)) and temperature > 0, "above 0"),
                     ("max_question", max_question, max_question is None or loader.is_count(max_question), "1 or more, or none")]
    if bad := [f"--{name} {value!r} ({want})" for name, value, ok, want in loader_checks if not ok]:
        raise loader.CheckpointError("bad values: " + "; ".join(bad))
    rank, world = rank_and_world()
    torch.manual_seed(seed + rank)  # an uninterrupted run repeats itself; a resumed one continues with a fresh stream

    output = Path(output_json) if output_json else rft_data()
    if output.is_dir():
        raise loader.CheckpointError(f"{output} is a folder: name the rows' file")
    if output.exists() and not overwrite:
        raise loader.CheckpointError(f"{output} exists: pass --overwrite to replace it")
    try:  # known before the model loads, not after the first chunk's sampling
        output.parent.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=output.parent).close()
    except OSError as e:
        raise loader.CheckpointError(f"can't write {output}: {e.strerror or e}") from None
    progress = shard_progress(output, rank, world)
    questions, more = questions_to_ask(max_question, spread, seed)
    if world > 1 and torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)))  # "cuda" is this rank's own GPU
    model = CoTModel(checkpoint, calculator=True)
    results = sample_rationales(model, questions[rank::world], oversample, temperature, progress, save_every=save_every,
                                desc="datagen" if world == 1 else f"datagen, rank {rank} of {world}")
    if rank:
        return  # rank 0 writes the output from every rank's progress
    if world > 1:
        results = gather(output, questions, world)
    report(results, oversample)
    sampled = [[q, a, reasoning] for q, (a, reasoning, _) in results.items() if reasoning is not None]
    rows = sampled + written_out(sampled, more)
    write_json(output, rows)
    for r in range(world):  # absent when there was nothing left to sample
        shard_progress(output, r, world).unlink(missing_ok=True)
    print(f"wrote {len(rows)} rows to {output}: {len(sampled)} sampled, {len(rows) - len(sampled)} written out at their factors")


if __name__ == "__main__":
    loader.cli(generate_dataset)
