"""What the `test` and `ask` commands print: accuracy per category and kind of quantity, the misses counted by kind,
and one question answered beside pint's answer."""

import math
import time
from collections import Counter, defaultdict

from .cli import checked_question
from .data import BenchmarkResult, Dataset, is_answer_valid
from .units.rationale import STATEMENT, states_the_factor
from .units.reader import category, read_question
from .units.table import convert


def quantity_kind(question: str) -> str:
    """What kind of number the question asks about: "1 to 10" (all our generator asks), "half" (2.5), "quarter"
    (1.75), "decimal" (3.7, 0.35), "11 to 999", "1000 and over", or "unread" when the question does not read as a
    conversion. Our training grid covers 1 to 10 and the halves (data/offgrid.json asks the others)."""
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
    SFT's), "wrong factor" (the text opens with a false one: `rationale.states_the_factor`), else "product" (the
    factor right, the multiplication more than 5% off)."""
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
    texts scored, not a second generation (a batch of other prompts pads differently, and in bf16 can write
    otherwise)."""
    dataset = Dataset(split)
    questions = [dataset[i][0] for i in range(min(len(dataset), max_question))]
    start = time.perf_counter()
    texts = model.batched_generate([model.format_prompt(q) for q in questions])
    seconds = time.perf_counter() - start
    result = BenchmarkResult.from_answers([model.parse_answer(t) for t in texts], dataset, len(questions))
    print(
        f"accuracy={result.accuracy:.2f} answer_rate={result.answer_rate:.2f} ({len(result.samples)} {split} questions)"
    )
    if tokens := getattr(model, "tokens_processed", None):  # what the model ran: comparable across machines
        print(f"tokens: prefill={tokens['prefill']} decode={tokens['decode']} in {seconds:.1f} s")
    print("per category: " + _accuracy_by(result.samples, category))
    print("per quantity: " + _accuracy_by(result.samples, quantity_kind))
    misses = [(s, text) for s, text in zip(result.samples, texts) if not s.is_correct]
    kinds = Counter(miss_kind(s.question, text, s.answer, s.correct_answer) for s, text in misses)
    print(
        "misses: " + "  ".join(f"{kind}={count}" for kind, count in kinds.most_common()) if misses else "misses: none"
    )
    result.miss_kinds = dict(kinds.most_common())
    for s, text in misses[:show_misses]:
        print(f"  miss: {s.question!r} expected {s.correct_answer:g}, got {s.answer:g} from {text!r}")
    return result


def ask(model, question: str, show_prompt: bool = False) -> float:
    """Answer one question and print what the model wrote, the parsed answer and, if the question reads
    as a conversion, pint's answer."""
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
