"""The grader graded: its formulas, fake submissions with known scores, and a corpus of broken ones."""
import math
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from grader import submission
from grader.__main__ import main
from grader.grader import case_points, linear, mean_loss

ROOT = Path(__file__).resolve().parent.parent

ORACLE = '''
import math, sys, torch
from homework.data import Dataset

TRUTH = dict(Dataset("valid").data)


class Oracle:
    """Right on the first `accuracy` fraction of the questions, NaN on the rest."""
    def __init__(self, accuracy, parameters=10):
        self.accuracy = accuracy
        self.model = torch.nn.Linear(parameters, 1, device="meta")

    def answer(self, *questions):
        return [TRUTH[q] if i < self.accuracy * len(questions) else math.nan for i, q in enumerate(questions)]


class BaseLLM:
    def __init__(self):
        raise NotImplementedError()
'''
GOOD = ORACLE + '''
def load_cot(): return Oracle(1.0)
def load_sft(): return Oracle(0.5)
def load_rft(): return Oracle(0.75)
'''


def write_package(root: Path, init: str, name: str = "homework") -> Path:
    package = root / name
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(init)
    return package


def make_zip(path: Path, members: dict) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def grade(path, capsys, *flags) -> tuple[int, str]:
    code = main([str(path), "--disable_color", *flags])
    return code, capsys.readouterr().out


def total(out: str) -> int:
    return int(out.strip().splitlines()[-1].split()[1])


@pytest.mark.parametrize(
    "value,low,high,fraction",
    [(0.0, 0.0, 0.4, 0.0), (0.2, 0.0, 0.4, 0.5), (0.9, 0.0, 0.4, 1.0), (0.5, 0.4, 0.6, 0.5), (0.3, 0.4, 0.6, 0.0),
     (7.1, 8.0, 6.2, 0.5), (6.0, 8.0, 6.2, 1.0), (9.0, 8.0, 6.2, 0.0), (math.nan, 0.0, 0.4, 0.0), (0.75, 0.7, 0.8, 0.5)],
)
def test_linear(value, low, high, fraction):
    assert linear(value, low, high) == pytest.approx(fraction)


@pytest.mark.parametrize("fraction,points,expected", [(0.5, 25, 13), (0.5, 5, 3), (0.49, 10, 5), (0.0, 25, 0), (1.0, 15, 15), (0.019, 25, 0), (0.02, 25, 1)])
def test_case_points_round_half_up(fraction, points, expected):
    assert case_points(fraction, points) == expected


def test_mean_loss_masks_padding(tiny_model, tokenizer):
    from homework.base_llm import BaseLLM

    llm = BaseLLM(model=tiny_model, tokenizer=tokenizer)
    questions, answers = ["Hi", "How many gram are there per 6 kg?"], [" there", " <answer>6000</answer>"]
    both = mean_loss(llm, questions, answers)
    # the same number computed one unpadded sequence at a time, weighted by token count
    losses, counts = [], []
    for q, a in zip(questions, answers):
        ids = tokenizer(q + a, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            losses.append(tiny_model(ids, labels=ids).loss.item())
        counts.append(ids.shape[1] - 1)
    assert both == pytest.approx(sum(l * c for l, c in zip(losses, counts)) / sum(counts), rel=1e-4)


def test_known_scores_from_a_fake_submission(tmp_path, capsys):
    code, out = grade(write_package(tmp_path, GOOD), capsys)
    assert code == 0
    lines = out.splitlines()
    assert "reported, not enforced" in lines[0] or "enforced" in lines[0]
    assert any(l.startswith("Base LLM generation") and "[   0 /  25 ]" in l and "Not Implemented" in l for l in lines)
    assert any(l.startswith("CoT model") and "[  25 /  25 ]" in l and "accuracy=1.00" in l for l in lines)
    assert any(l.startswith("SFT model") and "[  13 /  25 ]" in l and "answer_rate=0.50" in l for l in lines)
    assert any(l.startswith("RFT model") and "[  28 /  25 ]" in l for l in lines)  # 25 + 3 of 5 extra credit
    assert total(out) == 66 and out.strip().endswith("66 / 100")


def test_bundle_then_grade_the_zip_gives_the_same_scores(tmp_path, capsys, monkeypatch):
    package = write_package(tmp_path / "src", GOOD)
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "x.pyc").write_bytes(b"junk")
    monkeypatch.chdir(tmp_path)
    result = subprocess.run([sys.executable, str(ROOT / "bundle.py"), str(package), "abc123"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert zipfile.ZipFile(tmp_path / "abc123.zip").namelist() == ["homework/__init__.py"]
    _, from_folder = grade(package, capsys)
    _, from_zip = grade(tmp_path / "abc123.zip", capsys)
    strip_times = lambda out: [l.split("  (")[0] for l in out.splitlines()]
    assert strip_times(from_zip) == strip_times(from_folder)


def test_bundle_refuses_over_the_limit(tmp_path, monkeypatch):
    package = write_package(tmp_path / "src", GOOD)
    (package / "big.bin").write_bytes(os.urandom(51 * 2**20))  # random bytes don't compress
    monkeypatch.chdir(tmp_path)
    result = subprocess.run([sys.executable, str(ROOT / "bundle.py"), str(package), "abc"], capture_output=True, text=True)
    assert result.returncode != 0 and "over the 50 MB limit" in result.stderr
    assert not list(tmp_path.glob("abc.zip*"))


# --- the corpus of malformed submissions: each is graded without a crash, with the expected reason ---

def _not_a_zip(tmp):
    (tmp / "s.zip").write_text("hello")
    return tmp / "s.zip"


def _big_member(tmp):
    return make_zip(tmp / "s.zip", {"homework/__init__.py": "", "homework/big.bin": b"\0" * (3 * 2**20)})


def _package_with(init):
    return lambda tmp: write_package(tmp, init)


def _adapter_for(tmp, base_config):
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    base = LlamaForCausalLM(LlamaConfig(**base_config))
    get_peft_model(base, LoraConfig(r=2, target_modules="all-linear")).save_pretrained(tmp / "adapter")


TINY = dict(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1)

CORPUS = {
    "not a zip": (_not_a_zip, "neither a folder nor a zip"),
    "missing path": (lambda tmp: tmp / "nope.zip", "does not exist"),
    "empty zip": (lambda tmp: make_zip(tmp / "s.zip", {}), "the zip is empty"),
    "two top-level folders": (lambda tmp: make_zip(tmp / "s.zip", {"a/__init__.py": "", "b/__init__.py": ""}), "exactly one top-level folder, found: a, b"),
    "zip-slip ../": (lambda tmp: make_zip(tmp / "s.zip", {"homework/__init__.py": "", "homework/../../evil.py": "x"}), "unsafe path"),
    "absolute path": (lambda tmp: make_zip(tmp / "s.zip", {"/etc/evil.py": "x"}), "unsafe path"),
    "member that unpacks huge": (_big_member, "would unpack to 3 MB"),
    "folder without __init__": (lambda tmp: make_zip(tmp / "s.zip", {"homework/base_llm.py": ""}), "not a Python package"),
    "import error": (_package_with("import no_such_module_here\n"), "ModuleNotFoundError"),
    "exit at import": (_package_with("import sys\nsys.exit(3)\n"), "called exit while being imported"),
    "a case that raises": (_package_with(ORACLE + "def load_cot(): raise RuntimeError('boom')\n"), "RuntimeError: boom"),
    "NaN answers": (_package_with(ORACLE + "def load_cot(): return Oracle(0.0)\n"), "accuracy=0.00 answer_rate=0.00"),
    "exit inside a case": (_package_with(ORACLE + "def load_cot(): sys.exit(0)\n"), "the submission called exit"),
    "not implemented": (_package_with(ORACLE + "def load_cot(): raise NotImplementedError()\n"), "Not Implemented"),
    "model over 380M parameters": (_package_with(ORACLE + "def load_cot(): return Oracle(1.0, parameters=400_000_000)\n"), "400M parameters, over the 380M limit"),
    "missing adapter folder": (
        _package_with(ORACLE + "from pathlib import Path\nfrom homework.sft import load_adapter\ndef load_cot(): return load_adapter(Path(__file__).parent / 'sft_model')\n"),
        "CheckpointError: no adapter in",
    ),
}


def _mismatched_adapter(tmp):
    """An adapter trained on one tiny base, whose config names another, larger one."""
    import json

    from transformers import LlamaConfig, LlamaForCausalLM

    package = write_package(tmp, ORACLE + "from pathlib import Path\nfrom homework.sft import load_adapter\ndef load_cot(): return load_adapter(Path(__file__).parent / 'adapter')\n")
    _adapter_for(package, TINY)
    other = tmp / "other_base"
    LlamaForCausalLM(LlamaConfig(**{**TINY, "hidden_size": 32})).save_pretrained(other)
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(__import__("homework.loader").loader.embedded_dir()).save_pretrained(other)
    config_path = package / "adapter" / "adapter_config.json"
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "base_model_name_or_path": str(other)}))
    return package


CORPUS["adapter for another base model"] = (_mismatched_adapter, "does not fit the base model")


@pytest.mark.parametrize("name", CORPUS)
def test_malformed_submission(name, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(submission, "MAX_MEMBER_BYTES", 2 * 2**20)
    build, reason = CORPUS[name]
    code, out = grade(build(tmp_path), capsys)
    assert reason in out, out
    assert out.strip().splitlines()[-1].startswith("Total")
    assert not (tmp_path.parent / "evil.py").exists() and not Path("/etc/evil.py").exists()


def test_grader_cleans_up_its_temporary_directory(tmp_path, capsys, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "t"))
    (tmp_path / "t").mkdir()
    grade(make_zip(tmp_path / "s.zip", {"homework/__init__.py": GOOD}), capsys)
    assert list((tmp_path / "t").iterdir()) == []


def test_submission_output_is_hidden_unless_very_verbose(tmp_path, capsys):
    package = write_package(tmp_path, ORACLE + "def load_cot():\n    print('HELLO')\n    print('NOISE', file=sys.stderr)\n    return Oracle(1.0)\n")
    _, out = grade(package, capsys)
    assert "HELLO" not in out and "NOISE" not in capsys.readouterr().err
    main([str(package), "--disable_color", "-vv"])
    captured = capsys.readouterr()
    assert "HELLO" in captured.out and "NOISE" in captured.err
