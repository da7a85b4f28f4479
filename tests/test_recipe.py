"""The recipe (homework.recipes): every stage in turn, resumable, with a report whose checksums are the files'."""
import hashlib
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from homework import adapters, datagen, loader, rft, settings, sft
from homework.recipes import recipe, rft_data

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = [ROOT / "data" / "rft.json", ROOT / "data" / "rft_train.json", *(ROOT / "homework").glob("*_model/adapter_*")]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def checksums(report: str) -> dict[str, str]:
    return dict(re.findall(r"^- `(\S+)` ([0-9a-f]{64})$", report, re.M))


def test_the_shipped_files_are_the_committed_reports():
    report = (ROOT / "docs" / "REPORT.md").read_text()
    listed = checksums(report)
    assert set(listed) == {p.relative_to(ROOT).as_posix() for p in SHIPPED}
    for name, sha in listed.items():
        assert digest(ROOT / name) == sha, name
    assert "- quick: False" in report  # a full run with the defaults, not a smoke run


class Stages:
    """The recipe's stages, faked: each writes what the real one would and records that it ran."""

    def __init__(self, monkeypatch, fail: str | None = None):
        self.ran, self.fail = [], fail
        monkeypatch.setattr(datagen, "generate_dataset", lambda output, **kw: self.run("datagen", Path(output), "[]"))
        monkeypatch.setattr(rft_data, "make", lambda sampled, output, **kw: self.run("rft_data", Path(output), "[]") or
                            {"sampled": 0, "rewritten": 0, "grid": 0, "spread": 0, "rows": 0})
        monkeypatch.setattr(sft, "train", lambda output_dir, **kw: self.trained("sft", Path(output_dir)))
        monkeypatch.setattr(rft, "train", lambda output_dir, data, **kw: self.trained("rft", Path(output_dir)))
        figures = {f"{m} {s}": 0.5 for m in ("CoT", "SFT", "RFT", "RFT, calculator") for s in recipe.SPLITS}
        figures.update({f"RFT misses {s}": {"product": 3} for s in recipe.SPLITS})
        monkeypatch.setattr(recipe, "evaluate_all", lambda *args: self.run("evaluate", None, None) or figures)
        monkeypatch.setattr(recipe, "grade", lambda *args: self.run("grade", None, None) or {"grade": "Total 80 / 100", "cases": []})

    def trained(self, stage, output_dir):
        """A training stage: its adapter, its learning curve, and its tokens per second."""
        self.run(stage, output_dir / "adapter_model.safetensors", stage)
        curve = [{"step": 2, "epoch": 0.5, "valid": 0.25, "offgrid": 0.125}, {"step": 4, "epoch": 1.0, "valid": 0.5, "offgrid": 0.25}]
        (output_dir / "curve.json").write_text(json.dumps(curve))
        return {"tokens": 1000, "seconds": 10.0, "tokens_per_second": 100, "gflop_per_token": 0.5}

    def run(self, stage, path, text):
        if stage == self.fail:
            raise KeyboardInterrupt(f"killed in {stage}")
        self.ran.append(stage)
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)


def test_a_run_stopped_after_a_stage_starts_again_at_the_next_one(tmp_path, monkeypatch):
    out = tmp_path / "run"
    first = Stages(monkeypatch, fail="rft")
    with pytest.raises(KeyboardInterrupt):
        recipe.main(quick=True, output_dir=str(out))
    assert first.ran == ["datagen", "sft", "rft_data"] and not (out / "report.md").exists()
    second = Stages(monkeypatch)
    recipe.main(quick=True, output_dir=str(out))
    assert second.ran == ["rft", "evaluate", "grade"]
    report = (out / "report.md").read_text()
    assert set(checksums(report)) == {"data/rft.json", "data/rft_train.json",
                                      "homework/sft_model/adapter_model.safetensors",
                                      "homework/rft_model/adapter_model.safetensors"}
    assert "| RFT | 0.50 | 0.50 | 0.50 |" in report and "Total 80 / 100" in report
    third = Stages(monkeypatch)
    recipe.main(quick=True, output_dir=str(out))
    assert third.ran == []  # all done: only the report is written again


def test_stop_after_ends_the_run_after_that_stage_and_the_next_run_goes_on(tmp_path, monkeypatch):
    first = Stages(monkeypatch)
    recipe.main(quick=True, output_dir=str(tmp_path), stop_after="sft")
    assert first.ran == ["datagen", "sft"]
    second = Stages(monkeypatch)
    recipe.main(quick=True, output_dir=str(tmp_path))
    assert second.ran == ["rft_data", "rft", "evaluate", "grade"]
    with pytest.raises(settings.UsageError, match="--stop_after 'train': one of datagen, sft"):
        recipe.main(quick=True, output_dir=str(tmp_path), stop_after="train")


def test_a_run_of_another_seed_is_refused(tmp_path, monkeypatch):
    Stages(monkeypatch)
    recipe.main(quick=True, output_dir=str(tmp_path), seed=1)
    with pytest.raises(settings.UsageError, match="holds a run of another base model, seed or size"):
        recipe.main(quick=True, output_dir=str(tmp_path), seed=2)


def test_a_stage_whose_sizes_change_runs_again_with_the_stages_that_read_it(tmp_path, monkeypatch):
    Stages(monkeypatch)
    recipe.main(quick=True, output_dir=str(tmp_path))
    monkeypatch.setitem(recipe.SIZES, "quick", {**recipe.SIZES["quick"], "sft_epochs": 2})
    again = Stages(monkeypatch)
    recipe.main(quick=True, output_dir=str(tmp_path))
    assert again.ran == ["sft", "evaluate", "grade"]  # datagen and rft read nothing sft wrote
    state = json.loads((tmp_path / "recipe.json").read_text())
    assert state["settings"]["sft_epochs"] == 2 and state["stages"]["sft"]["settings"]["sft_epochs"] == 2
    monkeypatch.setitem(recipe.SIZES, "quick", {**recipe.SIZES["quick"], "spread": 7})
    third = Stages(monkeypatch)
    recipe.main(quick=True, output_dir=str(tmp_path))
    assert third.ran == ["rft_data", "rft", "evaluate", "grade"]  # datagen's samples stand
    monkeypatch.setitem(recipe.SIZES, "quick", {**recipe.SIZES["quick"], "rft_curve_every": 2})
    fourth = Stages(monkeypatch)
    recipe.main(quick=True, output_dir=str(tmp_path))
    assert fourth.ran == ["rft", "evaluate", "grade"]  # each training has its own curve: SFT's stands


def test_the_report_renders_each_command_from_the_arguments_that_ran_and_names_no_machine_path(tmp_path, monkeypatch):
    called = {}
    Stages(monkeypatch)
    monkeypatch.setattr(sft, "train", lambda output_dir, **kw: called.setdefault("sft", kw) and None)
    recipe.main(quick=True, output_dir=str(tmp_path / "run"), checkpoint="embedded")
    report = (tmp_path / "run" / "report.md").read_text()
    assert str(tmp_path) not in report and str(ROOT) not in report
    line = next(line for line in report.splitlines() if line.startswith("| sft |"))
    for flag, value in called["sft"].items():  # every argument the stage ran with, as it ran
        assert f"--{flag} {value} " in line or f"--{flag} {value}`" in line, flag
    assert "--output_dir OUTPUT/package/homework/sft_model" in line
    assert "- base model used: embedded SmolLM2-135M-Instruct" in report


def test_the_report_holds_each_learning_curve_as_a_table_and_a_plot(tmp_path, monkeypatch):
    Stages(monkeypatch)
    recipe.main(quick=True, output_dir=str(tmp_path))
    report = (tmp_path / "report.md").read_text()
    assert "![learning curves](curves.png)" in report and (tmp_path / "curves.png").stat().st_size > 1000
    assert report.count("| 4 | 1.00 | 0.50 | 0.25 |") == 2  # SFT's and RFT's last points
    assert "| sft | 1000 | 10 | 100 | 50 |" in report  # tokens, seconds, tokens/s and GFLOP/s


def test_a_stage_stopped_midway_counts_its_seconds_when_it_goes_on(tmp_path, monkeypatch):
    Stages(monkeypatch, fail="datagen")
    with pytest.raises(KeyboardInterrupt, match="recipe.json keeps the stages done and datagen its progress; the same "
                                                "command goes on from the datagen stage"):
        recipe.main(quick=True, output_dir=str(tmp_path))
    state = json.loads((tmp_path / "recipe.json").read_text())
    state["interrupted"]["datagen"] = 100.0  # as if the stopped run had sampled for 100 s
    (tmp_path / "recipe.json").write_text(json.dumps(state))
    Stages(monkeypatch)
    recipe.main(quick=True, output_dir=str(tmp_path))
    state = json.loads((tmp_path / "recipe.json").read_text())
    assert state["stages"]["datagen"]["seconds"] >= 100 and not state["interrupted"]


SETTINGS = '"settings": {"quick": true, "checkpoint": "embedded", "seed": 0}'


@pytest.mark.parametrize("record", [
    '{"settings": [1]}', "{not json", "[]", '{"settings": {}}',
    '{' + SETTINGS + ', "stages": {"datagen": 5}}',  # a stage that is not a record
    '{' + SETTINGS + ', "stages": {"datagen": {"seconds": "soon", "command": "x"}}}',
    '{' + SETTINGS + ', "stages": {"nonsense": {"seconds": 1, "command": "x"}}}',
    '{' + SETTINGS + ', "stages": {}, "interrupted": {"datagen": null}}',
])
def test_a_record_that_is_not_a_recipes_is_a_one_line_error(record, tmp_path, monkeypatch):
    stages = Stages(monkeypatch)
    (tmp_path / "recipe.json").write_text(record)
    with pytest.raises(settings.UsageError, match="is not a recipe's record"):
        recipe.main(quick=True, output_dir=str(tmp_path))
    assert stages.ran == [] and (tmp_path / "recipe.json").read_text() == record


def test_bad_outputs_and_flags_are_one_line_errors(tmp_path, monkeypatch):
    stages = Stages(monkeypatch)
    (tmp_path / "a_file").write_text("")
    with pytest.raises(settings.UsageError, match="is a file"):
        recipe.main(quick=True, output_dir=str(tmp_path / "a_file"))
    with pytest.raises(settings.UsageError, match="not with --quick"):
        recipe.main(quick=True, ship=True, output_dir=str(tmp_path / "x"))
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "README.md").write_text("a repository's own file")
    with pytest.raises(settings.UsageError, match=r"holds what this command does not write \(README.md\)"):
        recipe.main(quick=True, output_dir=str(tmp_path / "repo"))  # --output_dir . from a repository's root
    assert [p.name for p in (tmp_path / "repo").iterdir()] == ["README.md"]
    assert stages.ran == [] and not (tmp_path / "x").exists()


def run_quick(tmp_path: Path, checkpoint: str, *flags: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "homework.recipes", "--quick", "--output_dir", str(tmp_path / "run"), "--checkpoint", checkpoint,
               *flags]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=2400, env={**os.environ, "HF_HUB_OFFLINE": "1"})


@pytest.mark.slow
def test_quick_runs_every_stage_on_the_embedded_model_and_leaves_the_shipped_files_alone(tmp_path):
    before = {p: digest(p) for p in SHIPPED}
    result = run_quick(tmp_path, "embedded")
    assert result.returncode == 0, result.stderr[-3000:]
    state = json.loads((tmp_path / "run" / "recipe.json").read_text())
    assert list(state["stages"]) == recipe.STAGES
    assert re.search(r"Total +\d+ / 100", state["stages"]["grade"]["figures"]["grade"])
    report = (tmp_path / "run" / "report.md").read_text()
    made = recipe.made_files(tmp_path / "run")
    assert checksums(report) == {name: digest(path) for name, path in made.items()}
    assert {p: digest(p) for p in SHIPPED} == before


@pytest.mark.slow
def test_quick_runs_on_a_model_shaped_like_the_courses(tmp_path):
    """SmolLM2-360M-Instruct's widths and heads (960 hidden, 15 heads, 5 KV heads) at 2 of its 32 layers, random weights:
    the stages up to RFT run, so generation (datagen's) and both trainings work at those shapes (evaluate and grade
    generate alike: the embedded run above covers them). The adapter of all 32 layers stays under the homework's 20 MB,
    by arithmetic: the saved LoRA bytes a layer, at the rank lora_rank picks for 32 layers."""
    import torch
    from safetensors import safe_open
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(loader.resolve("embedded")[0])
    shape = dict(vocab_size=len(tokenizer), hidden_size=960, intermediate_size=2560, num_attention_heads=15,
                 num_key_value_heads=5, max_position_embeddings=8192, tie_word_embeddings=True,
                 bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                 pad_token_id=tokenizer.pad_token_id)
    with torch.device("meta"):  # the whole model's shapes, no weights
        rank = adapters.lora_rank(LlamaForCausalLM(LlamaConfig(num_hidden_layers=32, **shape)))
    base = tmp_path / "smollm2-360m-shaped"
    LlamaForCausalLM(LlamaConfig(num_hidden_layers=2, **shape)).save_pretrained(base)
    tokenizer.save_pretrained(base)
    result = run_quick(tmp_path, str(base), "--stop_after", "rft")
    assert result.returncode == 0, result.stderr[-3000:]
    state = json.loads((tmp_path / "run" / "recipe.json").read_text())
    assert list(state["stages"]) == recipe.STAGES[:recipe.STAGES.index("rft") + 1]
    for name in ("sft_model", "rft_model"):
        with safe_open(tmp_path / "run" / "package" / "homework" / name / "adapter_model.safetensors", "pt") as f:
            tensors = {key: f.get_slice(key) for key in f.keys()}
            trained_rank = next(t.get_shape()[0] for key, t in tensors.items() if "lora_A" in key)
            per_rank_per_layer = sum(2 * math.prod(t.get_shape()) for t in tensors.values()) / trained_rank / 2
        assert rank == 16 and 0 < rank * per_rank_per_layer * 32 < 20e6
