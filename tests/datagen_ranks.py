"""datagen with a sampler that needs no model, for the tests of several processes: `python tests/datagen_ranks.py OUTPUT
MAX_QUESTION`, alone or under torchrun. With CRASH_RANK=r set, rank r dies after its first chunk of questions."""
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo, for `homework` under torchrun

from homework import datagen
from homework.units import reader  # noqa: E402
from homework.data import Dataset  # noqa: E402

OVERSAMPLE = 16  # datagen's first chunk is then 4 questions (a 64-row CPU batch)


class Oracle:
    """Right, with a rationale that passes the verifier, on questions of an even length; wrong on the others. It
    depends on the question alone, as greedy decoding does, so every process answers a question alike."""

    def __init__(self, crash_after: int | None = None):
        self.truth = dict(Dataset("train").data)
        self.seen, self.crash_after = [], crash_after

    def format_prompt(self, question):
        return question

    def prompts_at_once(self, n=1, length=512):
        return 64  # a CPU's rows: datagen's first chunk is this over the samples a question

    def batched_generate(self, prompts, num_return_sequences, temperature):
        if self.crash_after is not None and len(self.seen) >= self.crash_after:
            raise KeyboardInterrupt("killed")
        self.seen.append(prompts)
        groups = []
        for question in prompts:
            answer, n = (self.truth[question] if len(question) % 2 == 0 else -1.0), reader.read_question(question).n
            groups.append([f"1 x = {answer / n} y. {n} * {answer / n} = {answer}. <answer>{answer}</answer>"] * num_return_sequences)
        return groups


def run(output: str, max_question: int, sampler: Oracle) -> Oracle:
    datagen.CoTModel = lambda checkpoint, calculator: sampler
    datagen.generate_dataset(output, oversample=OVERSAMPLE, max_question=max_question, overwrite=True)
    return sampler


if __name__ == "__main__":
    rank, crash = int(os.environ.get("RANK", 0)), os.environ.get("CRASH_RANK")
    run(sys.argv[1], int(sys.argv[2]), Oracle(crash_after=1 if crash is not None and int(crash) == rank else None))
