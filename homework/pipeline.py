"""Every stage, start to finish, in a temp folder: datagen, rft train, sft train, test, grade.

    python -m homework.pipeline --quick       # a handful of questions and steps: a few minutes on a 2-core CPU
    python -m homework.pipeline               # the whole recipe with the defaults (hours on a CPU)
    python -m homework.pipeline --quick --output_dir runs/p1   # keep what it made

It never touches the shipped adapters or data/rft.json: the adapters it trains go to the output folder,
and the grade is of a copy of the package holding them. One line per stage, with its figure and time.
"""
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import datagen, loader, rft, sft
from .cot import CoTModel
from .data import evaluate

ROOT = Path(__file__).resolve().parent.parent
# datagen: questions and samples each; training: steps (-1: the stage's epochs); test and grade: questions (0: all the course's)
SIZES = {
    "quick": dict(questions=6, oversample=2, rft_steps=3, sft_steps=3, test_questions=6, grade_questions=4),
    "full": dict(questions=None, oversample=10, rft_steps=-1, sft_steps=-1, test_questions=100, grade_questions=0),
}


def main(quick: bool = False, checkpoint: str = loader.DEFAULT_CHECKPOINT, output_dir: str | None = None):
    """Every stage in turn, one line each with its figure and time; output_dir: keep what it made (default: a temp folder)."""
    sizes = SIZES["quick" if quick else "full"]
    out = Path(output_dir or tempfile.mkdtemp(prefix="pipeline-"))
    out.mkdir(parents=True, exist_ok=True)
    package = out / "package" / "homework"  # a copy of the code, to hold the adapters trained here
    shutil.copytree(Path(__file__).parent, package, ignore=shutil.ignore_patterns("*_model", "__pycache__"))
    lines, begin = [], time.time()

    def report(stage: str, figure: str, start: float):
        lines.append(f"{stage:<10} {figure}  ({time.time() - start:.0f} s)")
        print(f"pipeline: {lines[-1]}", flush=True)

    start = time.time()
    data = out / "rft.json"
    datagen.generate_dataset(str(data), oversample=sizes["oversample"], max_question=sizes["questions"], checkpoint=checkpoint)
    rows = json.loads(data.read_text())
    report("datagen", f"{len(rows)} verified rationales from {sizes['questions'] or 'all'} training questions", start)

    start = time.time()
    if rows:
        rft.train(str(package / "rft_model"), str(data), max_question=0, checkpoint=checkpoint, max_steps=sizes["rft_steps"])
        report("rft train", f"adapter in {package / 'rft_model'}", start)
    else:  # a few samples of a small model can all miss
        report("rft train", "skipped: datagen kept no rationale", start)

    start = time.time()
    sft.train(str(package / "sft_model"), max_question=0, checkpoint=checkpoint, max_steps=sizes["sft_steps"])
    report("sft train", f"adapter in {package / 'sft_model'}", start)

    start = time.time()
    figures = []
    for name, build in [("cot", lambda: CoTModel(checkpoint)), ("sft", lambda: sft.load(package / "sft_model")),
                        ("rft", lambda: rft.load(package / "rft_model") if rows else None)]:
        model = build()
        if model is not None:
            result = evaluate(model, sizes["test_questions"], show_misses=0)
            figures.append(f"{name} {result.accuracy:.2f}")
    report("test", f"accuracy on {sizes['test_questions']} valid questions: " + ", ".join(figures), start)

    start = time.time()
    command = [sys.executable, "-m", "grader", str(package), "--disable_color", "--max_question", str(sizes["grade_questions"])]
    grade = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    total = grade.stdout.strip().splitlines()[-1] if grade.stdout.strip() else f"grader failed: {grade.stderr.strip()[-300:]}"
    report("grade", total + (f" (on {sizes['grade_questions']} questions a case: not the course's score)" if sizes["grade_questions"] else ""), start)

    print("\n".join(["", f"pipeline {'--quick ' if quick else ''}in {out} ({time.time() - begin:.0f} s):", *lines]))


if __name__ == "__main__":
    loader.cli(main)
