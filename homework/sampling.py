"""Sampling that survives a kill and shares its questions among processes: datagen's loop around its `sample`.

Progress is saved atomically about every 30 s in OUTPUT.partial; a killed run started again resumes from there. Under
torchrun or accelerate launch each process (rank) samples every WORLD_SIZE-th question into
OUTPUT.partial.RANKofWORLD_SIZE; rank 0 then gathers them all in question order.
"""

import json
import os
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from .data import write_json


def resumable(
    sample,
    questions: list[tuple[str, float]],
    first_chunk: int,
    progress: Path | None = None,
    chunk: int | None = None,
    save_every: float = 30.0,
    desc: str = "datagen",
) -> dict:
    """{question: [correct_answer, reasoning or None, number of correct samples]} for every question, from
    `sample(batch)` (datagen.sample), resumable.

    Progress is saved after each chunk of questions; within a chunk, generation keeps its batch full. chunk None: the
    first chunk is `first_chunk` questions, and each next one is sized from the last one's pace to take about
    `save_every` seconds, so a kill loses at most about that much sampling on any machine."""
    done = json.loads(progress.read_text()) if progress and progress.exists() else {}
    todo = [(q, a) for q, a in questions if q not in done]
    size, i = chunk or first_chunk, 0
    with tqdm(total=len(questions), initial=len(questions) - len(todo), desc=desc) as bar:
        while i < len(todo):
            batch, start = todo[i : i + size], time.perf_counter()
            i += len(batch)
            try:
                done.update(sample(batch))
            except KeyboardInterrupt:
                if progress is None:
                    raise
                raise KeyboardInterrupt(f"{progress} keeps {len(done)} of {len(questions)} questions sampled; the "
                                        "same command goes on from there") from None
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


def start(seed: int):
    """Before the model loads: this rank's own GPU as "cuda", and its own sampling seed (an uninterrupted run repeats
    itself; a resumed one goes on with a fresh stream)."""
    rank, world = rank_and_world()
    if world > 1 and torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)))
    torch.manual_seed(seed + rank)


def run(sample, questions: list[tuple[str, float]], output: Path, first_chunk: int, save_every: float) -> dict | None:
    """Every question's result, in question order, from this process alone or from all ranks (on rank 0; None on the
    others, whose work rank 0 gathers). The progress files are removed once the results are whole."""
    rank, world = rank_and_world()
    results = resumable(
        sample,
        questions[rank::world],
        first_chunk,
        shard_progress(output, rank, world),
        save_every=save_every,
        desc="datagen" if world == 1 else f"datagen, rank {rank} of {world}",
    )
    if rank:
        return None
    if world > 1:
        results = gather(output, questions, world)
    return results


def clean(output: Path):
    """Remove every rank's progress file (absent when there was nothing left to sample)."""
    _, world = rank_and_world()
    for r in range(world):
        shard_progress(output, r, world).unlink(missing_ok=True)
