"""The reworded evaluation set: our conversions asked the way people type them, in templates of our own
that the training data never uses. For evaluation only: never trained on, never a worked example.

    python -m homework.reworded            # rewrites data/reworded.json byte for byte (seeded)
    python -m homework.cot test --split reworded

Quantities are integers, halves ("2.5") and round thousands ("1,500"); units are any spelling the reader
knows (`units.WRITTEN`: "lbs", "fl oz", "kph", "metres", ...), singular or plural as it falls.
Every answer is pint's.
"""
import json
import random

from . import units

TEMPLATES = [
    "{n} {src} to {dst}",
    "{n} {src} in {dst}",
    "{n} {src} in {dst}?",
    "convert {n} {src} to {dst}",
    "Convert {n} {src} into {dst} please",
    "how many {dst} in {n} {src}",
    "How many {dst} are in {n} {src}?",
    "How many {dst} is {n} {src}?",
    "how many {dst} per {n} {src}",
    "What's {n} {src} in {dst}",
    "whats {n} {src} in {dst}",
    "{n} {src} = ? {dst}",
    "{n} {src} equals how many {dst}",
    "{n} {src} -> {dst}",
    "Convert {src} to {dst}: {n}",
    "From {src} to {dst}: how much is {n}?",
    "I have {n} {src}. How many {dst} do I have?",
    "I've got {n} {src}, what's that in {dst}",
    "Can you convert {n} {src} to {dst}?",
    "Could you tell me how many {dst} are in {n} {src}?",
    "Please convert {n} {src} to {dst}.",
    "Quick question: {n} {src} in {dst}?",
    "{n} {src} converted to {dst} is what",
    "need {n} {src} in {dst}",
    "{n} {src} expressed in {dst}",
    "{n} {src} expressed as {dst}, please",
    "What would {n} {src} be in {dst}?",
    "What is the equivalent of {n} {src} in {dst}?",
    "Give me {n} {src} in {dst}",
    "show {n} {src} in {dst}",
    "How much is {n} {src} in {dst}?",
    "{n} {src} makes how many {dst}?",
    "How many {dst} does {n} {src} make?",
    "If something is {n} {src}, what is it in {dst}?",
    "{dst} in {n} {src}?",
    "{n}{src} to {dst}",
    "{n} {src}, in {dst}",
    "In {dst}, what is {n} {src}?",
    "What do {n} {src} come to in {dst}?",
    "what are {n} {src} in {dst}",
    "{n} {src} is equal to how many {dst}?",
    "How many {dst} would {n} {src} be?",
    "Roughly how many {dst} are there in {n} {src}?",
    "calculate {n} {src} in {dst}",
    "{n} {src} into {dst}",
    "Convert from {src} to {dst}: {n}",
    "Change {n} {src} over to {dst}",
    "what's the {dst} value of {n} {src}",
]


def quantity(rng: random.Random) -> tuple[float, str]:
    """(value, as written). Mostly what data/ asks (1 to 10), so that the set measures the wording and not
    harder arithmetic; then halves ("2.5") and round thousands ("1,500")."""
    kind = rng.random()
    if kind < 0.7:
        value = rng.randint(1, 10)
        return value, str(value)
    if kind < 0.9:
        value = rng.randint(0, 9) + 0.5
        return value, f"{value:g}"
    value = rng.randint(2, 10) * 500
    return value, f"{value:,}"


def make_rows(seed: int = 0, count: int = 300) -> list[tuple[str, float, tuple]]:
    """`count` distinct (question, answer, (n, src, dst)) rows, none of them a train or valid question. Answers
    outside [0.01, 1e11] are skipped, as in the generator of data/."""
    from .data import DATA_DIR

    taken = {q for split in ("train", "valid") for q, _ in json.loads((DATA_DIR / f"{split}.json").read_text())}
    rng = random.Random(seed)
    rows = []
    while len(rows) < count:
        cat = rng.choice(list(units.WRITTEN))
        by_unit = {}  # pint expression -> its spellings
        for spelling, expression in units.WRITTEN[cat].items():
            by_unit.setdefault(expression, []).append(spelling)
        src_unit, dst_unit = rng.sample(sorted(by_unit), 2)
        src, dst = rng.choice(by_unit[src_unit]), rng.choice(by_unit[dst_unit])
        n, written = quantity(rng)
        question = rng.choice(TEMPLATES).format(n=written, src=src, dst=dst)
        answer = units.convert(n, src, dst)
        if question in taken or not 0.01 <= answer <= 1e11:
            continue
        taken.add(question)
        rows.append((question, answer, (n, src, dst)))
    return rows


def main(seed: int = 0, count: int = 300):
    from .data import DATA_DIR

    path = DATA_DIR / "reworded.json"
    path.write_text("[\n" + ",\n".join(json.dumps([q, a]) for q, a, _ in make_rows(seed, count)) + "\n]\n")
    print(f"wrote {count} rows to {path}")


if __name__ == "__main__":
    import fire

    fire.Fire(main)
