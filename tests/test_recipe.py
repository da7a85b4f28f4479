"""The recipe (homework.recipes): every stage in turn, resumable, with a report whose checksums are the files'."""
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from homework import datagen, loader, rft, sft
from homework.recipes import recipe

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = [ROOT / "data" / "rft.json", *(ROOT / "homework").glob("*_model/adapter_*")]


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
        monkeypatch.setattr(sft, "train", lambda output_dir, **kw: self.run("sft", Path(output_dir) / "adapter_model.safetensors", "s"))
        monkeypatch.setattr(rft, "train", lambda output_dir, data, **kw: self.run("rft", Path(output_dir) / "adapter_model.safetensors", "r"))
        figures = {f"{m} {s}": 0.5 for m in ("CoT", "SFT", "RFT", "RFT, calculator") for s in recipe.SPLITS}
        figures.update({f"RFT misses {s}": {"product": 3} for s in recipe.SPLITS})
        monkeypatch.setattr(recipe, "evaluate_all", lambda *args: self.run("evaluate", None, None) or figures)
        monkeypatch.setattr(recipe, "grade", lambda *args: self.run("grade", None, None) or {"grade": "Total 80 / 100", "cases": []})

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
    assert first.ran == ["datagen", "sft"] and not (out / "report.md").exists()
    second = Stages(monkeypatch)
    recipe.main(quick=True, output_dir=str(out))
    assert second.ran == ["rft", "evaluate", "grade"]
    report = (out / "report.md").read_text()
    assert set(checksums(report)) == {"data/rft.json", "homework/sft_model/adapter_model.safetensors",
                                      "homework/rft_model/adapter_model.safetensors"}
    assert "| RFT | 0.50 | 0.50 | 0.50 |" in report and "Total 80 / 100" in report
    third = Stages(monkeypatch)
    recipe.main(quick=True, output_dir=str(out))
    assert third.ran == []  # all done: only the report is written again


def test_a_run_of_another_seed_is_refused(tmp_path, monkeypatch):
    Stages(monkeypatch)
    recipe.main(quick=True, output_dir=str(tmp_path), seed=1)
    with pytest.raises(loader.CheckpointError, match="holds a run of another base model, seed or size"):
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
    assert third.ran == ["datagen", "rft", "evaluate", "grade"]


def test_bad_outputs_and_flags_are_one_line_errors(tmp_path, monkeypatch):
    stages = Stages(monkeypatch)
    (tmp_path / "a_file").write_text("")
    with pytest.raises(loader.CheckpointError, match="is a file"):
        recipe.main(quick=True, output_dir=str(tmp_path / "a_file"))
    with pytest.raises(loader.CheckpointError, match="not with --quick"):
        recipe.main(quick=True, ship=True, output_dir=str(tmp_path / "x"))
    assert stages.ran == [] and not (tmp_path / "x").exists()


def run_quick(tmp_path: Path, checkpoint: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "homework.recipes", "--quick", "--output_dir", str(tmp_path / "run"), "--checkpoint", checkpoint]
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
    """SmolLM2-360M-Instruct's shapes (960 hidden, 32 layers, 15 heads, 5 KV heads), random weights: every stage runs,
    generation and training work at those shapes, and the adapter stays under the homework's 20 MB."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(loader.resolve("embedded")[0])
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=960, intermediate_size=2560, num_hidden_layers=32,
                         num_attention_heads=15, num_key_value_heads=5, max_position_embeddings=8192, tie_word_embeddings=True,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    base = tmp_path / "smollm2-360m-shaped"
    LlamaForCausalLM(config).save_pretrained(base)
    tokenizer.save_pretrained(base)
    result = run_quick(tmp_path, str(base))
    assert result.returncode == 0, result.stderr[-3000:]
    state = json.loads((tmp_path / "run" / "recipe.json").read_text())
    assert list(state["stages"]) == recipe.STAGES
    for name in ("sft_model", "rft_model"):
        adapter = tmp_path / "run" / "package" / "homework" / name / "adapter_model.safetensors"
        assert 0 < adapter.stat().st_size < 20e6
