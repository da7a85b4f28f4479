"""Datasets, the grading rule, and `benchmark`, which scores any model with an `answer(*questions)` method.

As the course's data.py, it imports nothing of the package but settings.py (where the variable HOMEWORK_DATA is
named).
"""
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from .settings import DATA, UsageError, read

DATA_DIR = Path(__file__).resolve().parent.parent / "data"  # ours, made by python -m homework.units.generator


def data_dir() -> Path:
    """The data folder every stage reads: $HOMEWORK_DATA if set, else the repo's data/."""
    return Path(read(DATA) or DATA_DIR).expanduser()


def rft_data() -> Path:
    """Where datagen writes the RFT rationales and rft reads them by default: rft.json in the data folder."""
    return data_dir() / "rft.json"


def write_json(path: Path, obj: list | dict):
    """Write a list, one item a line, or a dict, one key a line, atomically: each line is json.dumps's own text, so any
    string
    (quotes, newlines, "], [") round-trips."""
    if isinstance(obj, dict):
        lines = [f"{json.dumps(key)}: {json.dumps(value)}" for key, value in obj.items()]
        text = "{\n" + ",\n".join(lines) + "\n}\n" if lines else "{}\n"
    else:
        text = "[\n" + ",\n".join(json.dumps(item) for item in obj) + "\n]\n" if obj else "[]\n"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)  # readers see the old file or the new one, never half of one


class DataError(UsageError):
    """A data file that can't be read as [question, answer] rows. The CLIs print it as one line."""


class MissingData(DataError, FileNotFoundError):
    pass


def finite(x: int | float) -> bool:
    """A number a float can hold: not NaN, not infinite, not an integer of thousands of digits."""
    try:
        return math.isfinite(x)
    except OverflowError:
        return False


def check_rows(rows, path: Path, reasoning: bool = False) -> list:
    """`rows` if it is a non-empty list of [question, answer, ...] rows with text questions and finite answers (and
    with `reasoning`, a text third: RFT's [question, answer, reasoning]), else a DataError naming the file, the row
    and what is wrong."""
    shape = "[question, answer, reasoning]" if reasoning else "[question, answer]"
    if not isinstance(rows, list):
        raise DataError(f"{path}: expected a list of {shape} rows, found a {type(rows).__name__}")
    if not rows:
        raise DataError(f"{path} has no rows")
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) < 2 + reasoning or (reasoning and not isinstance(row[2], str)):
            raise DataError(f"{path}: row {i} is {str(row)[:80]!r}, not a {shape} row")
        question, answer = row[:2]
        if not isinstance(question, str) or not question.strip():
            raise DataError(f"{path}: row {i}'s question is {question!r}, not text")
        if isinstance(answer, bool) or not isinstance(answer, (int, float)) or not finite(answer):
            shown = f"an integer of {len(str(answer)) if answer.bit_length() < 10_000 else 'thousands of'} digits" \
                if isinstance(answer, int) and not isinstance(answer, bool) else repr(answer)[:40]
            raise DataError(f"{path}: row {i}'s answer is {shown}, not a finite number")
    return rows


def read_rows(path: Path, reasoning: bool = False) -> list:
    """The rows of a JSON data file, checked (`check_rows`); a DataError if it isn't valid JSON."""
    try:
        rows = json.loads(Path(path).read_text())
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError, a number of 5,000 digits
        raise DataError(f"{path} is not valid JSON: {str(e).splitlines()[0][:200]}") from None
    return check_rows(rows, path, reasoning)


class Dataset:
    def __init__(self, split: str):
        path = data_dir() / f"{split}.json"
        if not path.exists():
            raise MissingData(f"no dataset split {split!r}: {path} does not exist")
        self.data = read_rows(path)

    def __len__(self):
        return len(self.data)

    def __getitem__(self, idx: int):
        return self.data[idx]


def is_answer_valid(answer: float, correct_answer: float, relative_tolerance: float = 0.05) -> bool:
    """The homework's rule: within 5% of the truth, after rounding both to 3 decimals. NaN is never valid."""
    answer, correct_answer = round(answer, 3), round(correct_answer, 3)
    return abs(answer - correct_answer) < relative_tolerance * abs(correct_answer)


@dataclass
class BenchmarkResult:
    @dataclass
    class Sample:
        question: str
        answer: float
        correct_answer: float
        is_correct: bool

    accuracy: float
    answer_rate: float  # fraction of questions for which the model gave a parsable number
    samples: list[Sample] = field(default_factory=list)

    @classmethod
    def from_answers(cls, answers: list[float], dataset: Dataset, max_question: int) -> "BenchmarkResult":
        samples = [
            cls.Sample(question=q, answer=a, correct_answer=c, is_correct=is_answer_valid(a, c))
            for (q, c), a in zip((dataset[i] for i in range(max_question)), answers)
        ]
        n = max(len(samples), 1)
        return cls(
            accuracy=sum(s.is_correct for s in samples) / n,
            answer_rate=sum(not math.isnan(s.answer) for s in samples) / n,
            samples=samples,
        )


def benchmark(func, dataset: Dataset, max_question: int) -> BenchmarkResult:
    max_question = min(len(dataset), max_question)
    questions = [dataset[i][0] for i in range(max_question)]
    answers = func.answer(*questions)
    return BenchmarkResult.from_answers(answers, dataset, max_question)
