"""Datasets, the grading rule, and `benchmark`, which scores any model with an `answer(*questions)` method."""
import json
import math
import os
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent.parent / "data"  # ours, made by python -m homework.generator
# This module imports nothing of the package, as the course's own data.py: loader.ENVIRONMENT lists this variable
DATA_ENV_VAR = "HOMEWORK_DATA"


def data_dir() -> Path:
    """The data folder every stage reads: $HOMEWORK_DATA if set, else the repo's data/."""
    return Path(os.environ.get(DATA_ENV_VAR) or DATA_DIR).expanduser()


def rft_data() -> Path:
    """Where datagen writes the RFT rationales and rft reads them by default: rft.json in the data folder."""
    return data_dir() / "rft.json"


def write_json(path: Path, obj: list | dict):
    """Write a list, one item a line, or a dict, one key a line, atomically: each line is json.dumps's own text, so any string
    (quotes, newlines, "], [") round-trips."""
    if isinstance(obj, dict):
        lines = [f"{json.dumps(key)}: {json.dumps(value)}" for key, value in obj.items()]
        text = "{\n" + ",\n".join(lines) + "\n}\n" if lines else "{}\n"
    else:
        text = "[\n" + ",\n".join(json.dumps(item) for item in obj) + "\n]\n" if obj else "[]\n"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)  # readers see the old file or the new one, never half of one


class DataError(ValueError):
    """A data file that can't be read as [question, answer] rows. The CLIs print it as one line."""


class MissingData(DataError, FileNotFoundError):
    pass


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
        if isinstance(answer, bool) or not isinstance(answer, (int, float)) or not math.isfinite(answer):
            raise DataError(f"{path}: row {i}'s answer is {answer!r}, not a finite number")
    return rows


def read_rows(path: Path, reasoning: bool = False) -> list:
    """The rows of a JSON data file, checked (`check_rows`); a DataError if it isn't valid JSON."""
    try:
        return check_rows(json.loads(Path(path).read_text()), path, reasoning)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path} is not valid JSON: {e}") from None


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


def quantity_kind(question: str) -> str:
    """What kind of number the question asks about: "1 to 10" (all our generator asks), "half" (2.5), "quarter"
    (1.75), "decimal" (3.7, 0.35), "11 to 999", "1000 and over", or "unread" when the question does not read as a
    conversion. Our training grid covers 1 to 10 and the halves (data/offgrid.json asks the others)."""
    from .reader import read_question

    if (reading := read_question(question)) is None:
        return "unread"
    n = reading.n
    if n >= 1000:
        return "1000 and over"
    if n == int(n):
        return "1 to 10" if n <= 10 else "11 to 999"
    return "half" if n * 2 == int(n * 2) else "quarter" if n * 4 == int(n * 4) else "decimal"


def miss_kind(question: str, text: str, answer: float, correct_answer: float) -> str:
    """Why a wrong answer is wrong: "no answer" (none parsed), "unread" (the question does not read, so there is no
    factor to check), "power of ten" (within 5% of the truth times 10^k), "no factor stated" (a direct answer, as
    SFT's), "wrong factor" (the text opens with a false one: `datagen.states_the_factor`), else "product" (the
    factor right, the multiplication more than 5% off)."""
    from .datagen import STATEMENT, states_the_factor
    from .reader import read_question

    if math.isnan(answer):
        return "no answer"
    if answer > 0 and correct_answer > 0 and (k := round(math.log10(answer / correct_answer))) != 0:
        if is_answer_valid(answer / 10**k, correct_answer):
            return "power of ten"
    if (reading := read_question(question)) is None or not reading.n:
        return "unread"
    if not STATEMENT.match(text):
        return "no factor stated"
    return "product" if states_the_factor(text, correct_answer / reading.n) else "wrong factor"


def _accuracy_by(samples: list, key) -> str:
    groups = defaultdict(list)
    for s in samples:
        groups[key(s.question)].append(s.is_correct)
    return "  ".join(f"{k}={sum(v) / len(v):.2f} (n={len(v)})" for k, v in sorted(groups.items()))


def evaluate(model, max_question: int = 100, split: str = "valid", show_misses: int = 5) -> BenchmarkResult:
    """Benchmark on the first `max_question` questions and print the result, per unit category and per kind of
    quantity (a set of other quantities scores lower for that alone), the misses counted by kind (`miss_kind`), and
    the first misses with what the model wrote.
    The answers are `benchmark`'s (as `BaseLLM.answer` gives them), and the texts are kept: the misses shown are the
    texts scored, not a second generation (a batch of other prompts pads differently, and in bf16 can write otherwise)."""
    from .reader import category

    dataset = Dataset(split)
    questions = [dataset[i][0] for i in range(min(len(dataset), max_question))]
    start = time.perf_counter()
    texts = model.batched_generate([model.format_prompt(q) for q in questions])
    seconds = time.perf_counter() - start
    result = BenchmarkResult.from_answers([model.parse_answer(t) for t in texts], dataset, len(questions))
    print(f"accuracy={result.accuracy:.2f} answer_rate={result.answer_rate:.2f} ({len(result.samples)} {split} questions)")
    if tokens := getattr(model, "tokens_processed", None):  # what the model ran: comparable across machines
        print(f"tokens: prefill={tokens['prefill']} decode={tokens['decode']} in {seconds:.1f} s")
    print("per category: " + _accuracy_by(result.samples, category))
    print("per quantity: " + _accuracy_by(result.samples, quantity_kind))
    misses = [(s, text) for s, text in zip(result.samples, texts) if not s.is_correct]
    kinds = Counter(miss_kind(s.question, text, s.answer, s.correct_answer) for s, text in misses)
    print("misses: " + "  ".join(f"{kind}={count}" for kind, count in kinds.most_common()) if misses else "misses: none")
    result.miss_kinds = dict(kinds.most_common())
    for s, text in misses[:show_misses]:
        print(f"  miss: {s.question!r} expected {s.correct_answer:g}, got {s.answer:g} from {text!r}")
    return result


# Each CoT example asks the question's own words again: a 10,000-character question made a prompt of 17,197
# tokens, past the model's 8,192-token context.
MAX_QUESTION_CHARS = 1000


def checked_question(question) -> str:
    """The question as text (Fire passes `ask 42` as an int), or a DataError if it is empty or too long for a prompt.
    The `ask` commands call it before they load a model."""
    question = str(question).strip()
    if not question:
        raise DataError("the question is empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise DataError(f"the question is {len(question)} characters long; at most {MAX_QUESTION_CHARS}")
    return question


def ask(model, question: str, show_prompt: bool = False) -> float:
    """Answer one question and print what the model wrote, the parsed answer and, if the question reads
    as a conversion, pint's answer."""
    from .reader import read_question
    from .units import convert

    question = checked_question(question)
    prompt = model.format_prompt(question)
    if show_prompt:
        print(f"prompt:\n{prompt}")
    text = model.batched_generate([prompt])[0]
    answer = model.parse_answer(text)
    print(f"model wrote: {text!r}\nparsed answer: {answer:g}")
    reading = read_question(question)
    if reading is None:
        print("true answer: unknown (the question does not read as a conversion between units we know)")
    else:
        truth = convert(*reading)
        verdict = "right" if is_answer_valid(answer, truth) else "wrong"
        print(f"true answer: {truth:g} ({reading.n:g} {reading.src} in {reading.dst}, by pint): {verdict}")
    return answer
