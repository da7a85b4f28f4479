"""Rejection sampling: sample k CoT completions per training question, keep a correct one, write data/rft.json.

    python -m homework.datagen data/rft.json --overwrite                # 10 samples a question at temperature 0.6
    python -m homework.datagen runs/small.json --max_question 50        # the first 50 training questions
    torchrun --nproc_per_node 2 -m homework.datagen data/rft.json     # two processes share the questions

1. Sample: the CoT model, calculator on, writes `oversample` completions for every training question.
2. Keep: the first completion graded correct (the grader's own check) that opens with the true factor
   ("1 mile = 1.609 kilometer."), as the model wrote it.

Rows are [question, answer, reasoning]. A killed run started again resumes (sampling.py). The recipe's later steps
(homework/recipes/rft_data.py) rewrite the kept completions into one form and write the sampled factors out at
more quantities; this file is the homework's part.
"""
from pathlib import Path

from . import loader, sampling
from .base_llm import parse_answer
from .cli import check_flags, check_output_file, cli, is_count
from .cot import CoTModel
from .data import Dataset, is_answer_valid, rft_data, write_json
from .units import rationale
from .units.reader import read_question, readable


def select(question: str, correct_answer: float, completions: list[str]) -> str | None:
    """The first completion graded correct (the grader's own check) that opens with the true factor, as the model
    wrote it; None if no completion is."""
    reading = read_question(question)
    if reading is None or not reading.n:
        return None
    for completion in completions:
        if is_answer_valid(parse_answer(completion), correct_answer) and rationale.states_the_factor(
                completion, correct_answer / reading.n):
            return completion.strip()
    return None


def sample(model: CoTModel, questions: list[tuple[str, float]], oversample: int, temperature: float) -> dict:
    """{question: [correct answer, the reasoning kept or None, how many samples were right]}."""
    prompts = [model.format_prompt(q) for q, _ in questions]
    samples = model.batched_generate(prompts, num_return_sequences=oversample, temperature=temperature)
    return {q: [a, select(q, a, completions), sum(is_answer_valid(parse_answer(c), a) for c in completions)]
            for (q, a), completions in zip(questions, samples)}


def report(results: dict, oversample: int) -> dict:
    """Yield (a rationale kept), pass@1 and pass@k, where k = oversample."""
    n = max(len(results), 1)
    stats = {"yield": sum(r[1] is not None for r in results.values()) / n,
             "pass@1": sum(r[2] for r in results.values()) / (n * oversample),
             f"pass@{oversample}": sum(r[2] > 0 for r in results.values()) / n}
    print(" ".join(f"{k}={v:.3f}" for k, v in stats.items()) + f" ({len(results)} questions)")
    return stats


def generate_dataset(output_json: str | None = None, oversample: int = 10, temperature: float = 0.6,
                     max_question: int | None = None, checkpoint: str = loader.DEFAULT_CHECKPOINT,
                     seed: int = 0, overwrite: bool = False, save_every: float = 30.0):
    """Sample `oversample` CoT completions per question and write the verified reasoning to output_json.

    Args:
        output_json: the rows' file; none: rft.json in the data folder. Progress goes to OUTPUT.partial meanwhile
        oversample: samples per question
        temperature: sampling temperature, above 0
        max_question: only the first this many training questions; none: all of them
        seed: of the sampling
        overwrite: replace an existing output_json (without it, an existing file is refused)
        save_every: seconds of sampling between saves of the progress"""
    check_flags([("oversample", oversample, is_count(oversample), "a count of 1 or more"),
                 ("temperature", temperature, isinstance(temperature, (int, float)) and temperature > 0, "above 0"),
                 ("max_question", max_question, max_question is None or is_count(max_question), "1 or more, or none"),
                 ("seed", seed, is_count(seed, 0), "a whole number, 0 or more")])
    output = Path(output_json) if output_json else rft_data()
    check_output_file(output, overwrite)
    questions = [tuple(row) for row, *_ in readable(Dataset("train").data[:max_question], "datagen")]
    sampling.start(seed)
    model = CoTModel(checkpoint, calculator=True)
    first_chunk = -(-model.prompts_at_once() // oversample)  # questions whose samples fill a batch; then by pace
    results = sampling.run(lambda batch: sample(model, batch, oversample, temperature), questions, output,
                           first_chunk, save_every)
    if results is None:
        return  # another rank: rank 0 writes the output
    report(results, oversample)
    sampled = [[q, a, reasoning] for q, (a, reasoning, _) in results.items() if reasoning is not None]
    write_json(output, sampled)
    sampling.clean(output)
    print(f"wrote {len(sampled)} rows to {output}: a kept completion for {len(sampled)} of {len(questions)} questions")


if __name__ == "__main__":
    cli(generate_dataset)
