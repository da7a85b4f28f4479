"""The grader graded: its formulas, fake submissions with known scores, and a corpus of broken ones.

Every case runs in a child process. The fakes import nothing heavy, so a child starts in a fraction of a second."""
import json
import math
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch

from grader import submission
from grader.__main__ import Zygote, main, run_child
from grader.cases import RULES_VAR, case_points, linear, loss_inputs
from grader.loss import LossInputsError, course_loss

ROOT = Path(__file__).resolve().parent.parent

ORACLE = '''
import json, math, sys
from .data import Dataset

TRUTH = dict(Dataset("valid").data)


class Parameters:
    """A model's stand-in: the grader only counts its parameters."""
    def __init__(self, n):
        self.n = n

    def parameters(self):
        return [self]

    def numel(self):
        return self.n


class Oracle:
    """Right on the first `accuracy` fraction of the questions, NaN on the rest."""
    def __init__(self, accuracy, parameters=10):
        self.accuracy = accuracy
        self.model = Parameters(parameters)

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


def write_package(root: Path, init: str, name: str = "homework", data: str | None = None, modules: bool = False) -> Path:
    """A fake submission: `init` as __init__.py, beside the course's data module (the repo's data.py and the
    settings.py it reads HOMEWORK_DATA's name from, or `data` as its text), and with `modules` the repo's other modules
    too."""
    package = root / name
    package.mkdir(parents=True)
    if modules:  # the package's code, without its adapters
        shutil.copytree(ROOT / "homework", package, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("*_model", "__pycache__"))
    (package / "data.py").write_text(data if data is not None else (ROOT / "homework" / "data.py").read_text())
    shutil.copy(ROOT / "homework" / "settings.py", package / "settings.py")
    (package / "__init__.py").write_text(init)
    return package


def make_zip(path: Path, members: dict) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def grade(path, capsys, *flags) -> tuple[int, str]:
    code = main([str(path), "--disable_color", "--max_case_seconds", "30", *flags])  # later flags win
    return code, capsys.readouterr().out


def total(out: str) -> int:
    return int(out.strip().splitlines()[-1].split()[1])


def line(out: str, title: str) -> str:
    return next(l for l in out.splitlines() if l.startswith(title))


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


def test_course_loss_is_the_mean_over_every_position(tiny_model, tokenizer):
    from homework.base_llm import BaseLLM

    llm = BaseLLM(model=tiny_model, tokenizer=tokenizer)
    questions, answers = ["Hi", "How many gram are there per 6 kg?"], [" there", " <answer>6000</answer>"]
    sent = loss_inputs(llm, questions, answers)  # in the case's process: data
    course, real = course_loss(sent["loss_inputs"], sent["binary"])  # in the parent
    # the course's number: every position of the left-padded batch, padding included, one at a time
    batch = tokenizer([q + a for q, a in zip(questions, answers)], padding=True, return_tensors="pt").to(tiny_model.device)
    with torch.no_grad():
        logits = tiny_model(**batch).logits
    ids = batch["input_ids"]
    losses = [torch.nn.functional.cross_entropy(logits[b, t], ids[b, t + 1]).item() for b in range(2) for t in range(ids.shape[1] - 1)]
    assert course == pytest.approx(sum(losses) / len(losses), rel=1e-4)
    # the real-token number: each unpadded sequence alone, weighted by its token count
    per_sequence, counts = [], []
    for q, a in zip(questions, answers):
        ids = tokenizer(q + a, return_tensors="pt")["input_ids"].to(tiny_model.device)
        with torch.no_grad():
            per_sequence.append(tiny_model(ids, labels=ids).loss.item())
        counts.append(ids.shape[1] - 1)
    assert real == pytest.approx(sum(l * c for l, c in zip(per_sequence, counts)) / sum(counts), rel=1e-4)
    assert course != pytest.approx(real, rel=1e-3)  # the padding counts in the course's number


SENT = {"input_ids": [[0, 1, 2, 3]] * 2, "attention_mask": [[0, 1, 1, 1], [1, 1, 1, 1]], "logits_shape": [2, 3, 50],
        "logits_dtype": "float32"}


@pytest.mark.parametrize("inputs, cut, message", [
    ({**SENT, "logits_shape": [2, 4, 50]}, 0, "do not match"),
    (SENT, 4, "bytes of logits"),
    ({**SENT, "input_ids": [[0, 1, 2, 50]] * 2}, 0, "outside its logits' vocabulary"),
    ({**SENT, "attention_mask": [[2, 1, 1, 1]] * 2}, 0, "its mask is not 0 and 1"),
    ({**SENT, "logits_dtype": "int8"}, 0, "not one of bfloat16, float16, float32"),
    ({**SENT, "input_ids": "x"}, 0, "could not be read"),
], ids=["shapes", "bytes", "vocabulary", "mask", "dtype", "not ids"])
def test_loss_inputs_that_do_not_fit_are_refused(inputs, cut, message):
    """The parent computes the loss only from ids, a mask and logits that fit one another (loss.py)."""
    payload = bytes(2 * 3 * 50 * 4)
    assert course_loss(SENT, payload) == pytest.approx((math.log(50), math.log(50)))  # all logits alike
    with pytest.raises(LossInputsError, match=message):
        course_loss(inputs, payload[:len(payload) - cut])


ECHO = ORACLE.split("class BaseLLM")[0] + """
import torch
from transformers import AutoTokenizer


class Echo(torch.nn.Module):
    \"\"\"Puts all its belief on the next token of its input (shifted by `miss`: then on a wrong one).\"\"\"
    def __init__(self, miss):
        super().__init__()
        self.miss, self.weight, self.device = miss, torch.nn.Parameter(torch.zeros(1)), torch.device("cpu")

    def forward(self, input_ids, attention_mask):
        logits = torch.full((*input_ids.shape, VOCAB), -30.0)
        following = torch.cat([input_ids[:, 1:], input_ids[:, -1:]], dim=1)
        logits.scatter_(2, ((following + self.miss) % VOCAB)[..., None], 30.0)
        return type("Output", (), {"logits": logits})


class BaseLLM:
    def __init__(self):
        self.tokenizer = AutoTokenizer.from_pretrained(TOKENIZER)
        self.tokenizer.padding_side = "left"
        self.model, self.device = Echo(MISS), torch.device("cpu")

    def generate(self, prompt):
        return " <answer>1</answer>"

    def batched_generate(self, prompts):
        return [self.generate(p) for p in prompts]
"""


def echo_package(root: Path, accuracy: float, miss: int, name: str = "homework") -> Path:
    from homework import loader

    setup = f"TOKENIZER, MISS = {str(loader.embedded_dir())!r}, {miss}\nVOCAB = 49152\n"
    loaders = "".join(f"def load_{stage}(): return Oracle({accuracy})\n" for stage in ("cot", "sft", "rft"))
    return write_package(root, setup + ECHO + loaders, name)


def test_known_scores_from_a_fake_submission(tmp_path, capsys):
    code, out = grade(write_package(tmp_path, GOOD), capsys)
    assert code == 0
    from grader.__main__ import has_gpu

    enforced = has_gpu()
    assert out.splitlines()[0].startswith("timeouts: enforced (" if enforced else "timeouts: reported, not enforced (")
    assert "[   0 /  10 ]  Not Implemented" in line(out, "generate, one question")
    assert "[   0 /  15 ]  Not Implemented" in line(out, "batched_generate")
    assert "[  25 /  25 ]  accuracy=1.00 answer_rate=1.00" in line(out, "CoT model")
    assert "[  13 /  25 ]  accuracy=0.50 answer_rate=0.50" in line(out, "SFT model")
    assert "[  25 /  25 ]  accuracy=0.75" in line(out, "RFT model")
    assert "[   3 /   5 ]" in line(out, "RFT extra credit")  # 0.75 is half way from 0.7 to 0.8
    assert total(out) == 66 and "66 / 100" in out.splitlines()[-1]
    assert "reference check" not in out


@pytest.mark.slow
@pytest.mark.parametrize("accuracy,miss,points", [(1.0, 0, 105), (0.0, 1, 0)], ids=["all right", "all wrong"])
def test_all_right_and_all_wrong(accuracy, miss, points, tmp_path, capsys):
    package = echo_package(tmp_path, accuracy, miss)
    if miss:  # the loss is computed in the grader's parent: torch's cross-entropy patched in the case changes nothing
        with open(package / "__init__.py", "a") as init:
            init.write("torch.nn.functional.cross_entropy = lambda *a, **k: torch.tensor(0.0)\n")
    _, out = grade(package, capsys)
    for title, earned in [("generate, one", 10), ("batched_generate", 15), ("CoT", 25), ("SFT", 25), ("RFT model", 25), ("RFT extra", 5)]:
        assert f"[ {earned if miss == 0 else 0:>3} /" in line(out, title), out
    assert total(out) == points
    assert "why two losses" in out


def test_one_stage_missing(tmp_path, capsys):
    _, out = grade(write_package(tmp_path, GOOD.replace("def load_sft(): return Oracle(0.5)\n", "")), capsys)
    assert "[   0 /  25 ]  AttributeError: module 'homework' has no attribute 'load_sft'" in line(out, "SFT model")
    assert total(out) == 66 - 13


def test_bundle_then_grade_the_zip_gives_the_same_scores(tmp_path, capsys, monkeypatch):
    package = write_package(tmp_path / "src", GOOD)
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "x.pyc").write_bytes(b"junk")
    monkeypatch.chdir(tmp_path)
    result = subprocess.run([sys.executable, str(ROOT / "bundle.py"), str(package), "abc123"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert sorted(zipfile.ZipFile(tmp_path / "abc123.zip").namelist()) == [
        "homework/__init__.py", "homework/data.py", "homework/settings.py"]
    _, from_folder = grade(package, capsys)
    _, from_zip = grade(tmp_path / "abc123.zip", capsys)
    strip_times = lambda out: [l.split("  (")[0] for l in out.splitlines()]
    assert strip_times(from_zip) == strip_times(from_folder)


def test_a_zip_over_the_size_limit_is_graded_with_a_warning(tmp_path, capsys, monkeypatch):
    import grader.__main__ as grader_main

    package = write_package(tmp_path / "src", GOOD)
    path = make_zip(tmp_path / "s.zip", {f"homework/{f.name}": f.read_text() for f in package.iterdir()})
    monkeypatch.setattr(grader_main, "LIMIT_BYTES", path.stat().st_size // 2)  # half its size
    _, out = grade(path, capsys)
    assert "bundle.py and the course would refuse it" in line(out, "warning: the zip is")
    assert total(out) == 66  # graded all the same


def test_bundle_refuses_over_the_limit(tmp_path, monkeypatch):
    package = write_package(tmp_path / "src", GOOD)
    (package / "big.bin").write_bytes(os.urandom(51 * 2**20))  # random bytes don't compress
    monkeypatch.chdir(tmp_path)
    result = subprocess.run([sys.executable, str(ROOT / "bundle.py"), str(package), "abc"], capture_output=True, text=True)
    assert result.returncode != 0 and "over the 50 MB limit" in result.stderr
    assert not list(tmp_path.glob("abc.zip*"))


# --- the corpus of malformed submissions: each is graded without a crash, with a one-line reason ---

def _not_a_zip(tmp):
    (tmp / "s.zip").write_text("hello")
    return tmp / "s.zip"


def _big_member(tmp):
    return make_zip(tmp / "s.zip", {"homework/__init__.py": "", "homework/big.bin": b"\0" * (3 * 2**20)})


def _package_with(init, **kwargs):
    return lambda tmp: write_package(tmp, init, **kwargs)


def _adapter_for(tmp, base_config):
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    base = LlamaForCausalLM(LlamaConfig(**base_config))
    get_peft_model(base, LoraConfig(r=2, target_modules="all-linear")).save_pretrained(tmp / "adapter")


TINY = dict(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1)
LOAD_ADAPTER = ORACLE + "from pathlib import Path\nfrom .sft import load\ndef load_sft(): return load(Path(__file__).parent / 'adapter')\n"
LIAR = ORACLE.replace("from .data import Dataset", "from homework.data import Dataset") + "def load_cot(): return Oracle(0.1)\n"
LYING_DATA = (ROOT / "homework" / "data.py").read_text() + """

_honest = benchmark


def benchmark(func, dataset, max_question):
    result = _honest(func, dataset, max_question)
    result.accuracy = 1.0
    return result
"""
def _data_returning(accuracy: str = "result.accuracy", sample: str = "") -> str:
    """The repo's data module, with a benchmark whose result is tampered with after the honest one is computed."""
    return (ROOT / "homework" / "data.py").read_text() + f"""

_honest = benchmark


def benchmark(func, dataset, max_question):
    result = _honest(func, dataset, max_question)
    result.accuracy = {accuracy}
    {sample}
    return result
"""


REWRITES_VALID = ORACLE.replace("TRUTH = dict(", """from pathlib import Path
_valid = Path(__file__).resolve().parent.parent / "data" / "valid.json"
_valid.write_text(json.dumps([[q, 1.0] for q, _ in json.loads(_valid.read_text())]))  # every answer 1.0
TRUTH = dict(""") + "def load_cot(): return Oracle(1.0)\n"
NO_DATA = """
class Nothing:
    def parameters(self):
        return []


class Blank:
    model = Nothing()

    def answer(self, *questions):
        return [float("nan")] * len(questions)


def load_cot():
    return Blank()
"""

def _zip_with(tmp, info: zipfile.ZipInfo, data: bytes = b"x") -> Path:
    path = tmp / "s.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("homework/__init__.py", "")
        zf.writestr(info, data)
    return path


def _symlink_member(tmp):
    info = zipfile.ZipInfo("homework/etc")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return _zip_with(tmp, info, b"/etc")


def _patched(tmp, patch) -> Path:
    """A one-member zip (homework/__init__.py, 1200 bytes deflated), its bytes changed by patch(bytearray)."""
    path = make_zip(tmp / "s.zip", {"homework/__init__.py": "x = 1\n" * 200})
    data = bytearray(path.read_bytes())
    patch(data)
    path.write_bytes(bytes(data))
    return path


def _set_method(data, method: int):  # in the local header (offset 8) and in the central directory (offset 10)
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        at = data.index(signature) + offset
        data[at : at + 2] = method.to_bytes(2, "little")


def _set_encrypted(data):  # bit 0 of the flags: in the local header (offset 6) and in the central directory (offset 8)
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        data[data.index(signature) + offset] |= 0x1


def _corrupt_data(data):
    start = data.index(b"PK\x03\x04") + 30 + len("homework/__init__.py")  # the deflate stream
    end = data.index(b"PK\x01\x02")
    data[start + 1 : (start + end) // 2] = b"\xff" * ((start + end) // 2 - start - 1)


def _lying_size(data):  # the central directory says 10 bytes: the CRC of what comes out can't match
    at = data.index(b"PK\x01\x02") + 24
    data[at : at + 4] = (10).to_bytes(4, "little")


def _folder_with_a_link_loop(tmp):
    package = write_package(tmp, GOOD)
    (package / "loop").symlink_to(package, target_is_directory=True)
    return package


# name: (builder, the case's line, the reason on it); a None line: the reason is the whole report's
CORPUS = {
    "a file and a folder of one name": (lambda tmp: make_zip(tmp / "s.zip", {"homework/__init__.py": "", "homework/x": "1", "homework/x/y.py": ""}), None, "homework/x is both a file and a folder"),
    "a symbolic link": (_symlink_member, None, "homework/etc is a symbolic link"),
    "the encrypted flag": (lambda tmp: _patched(tmp, _set_encrypted), None, "homework/__init__.py is encrypted"),
    "deflate64": (lambda tmp: _patched(tmp, lambda d: _set_method(d, 9)), None, "compressed by method 9"),
    "corrupt data": (lambda tmp: _patched(tmp, _corrupt_data), None, "the zip is corrupt at homework/__init__.py"),
    "a lying size header": (lambda tmp: _patched(tmp, _lying_size), None, "the zip is corrupt at homework/__init__.py"),
    "a folder that links to itself": (_folder_with_a_link_loop, "CoT", "accuracy=1.00"),
    "a folder named as a standard library module": (lambda tmp: write_package(tmp, GOOD, name="json"), None, "named 'json', as a standard library module"),
    "not a zip": (_not_a_zip, None, "neither a folder nor a zip"),
    "missing path": (lambda tmp: tmp / "nope.zip", None, "does not exist"),
    "empty zip": (lambda tmp: make_zip(tmp / "s.zip", {}), None, "the zip is empty"),
    "two top-level folders": (lambda tmp: make_zip(tmp / "s.zip", {"a/__init__.py": "", "b/__init__.py": ""}), None, "exactly one top-level folder, found: a, b"),
    "zip-slip ../": (lambda tmp: make_zip(tmp / "s.zip", {"homework/__init__.py": "", "homework/../../evil.py": "x"}), None, "unsafe path"),
    "absolute path": (lambda tmp: make_zip(tmp / "s.zip", {"/etc/evil.py": "x"}), None, "unsafe path"),
    "member that unpacks huge": (_big_member, None, "would unpack to 3 MB"),
    "folder without __init__": (lambda tmp: make_zip(tmp / "s.zip", {"homework/base_llm.py": ""}), None, "not a Python package"),
    "import error": (_package_with("import no_such_module_here\n"), None, "importing the submission failed: ModuleNotFoundError"),
    "exit at import": (_package_with("import sys\nsys.exit(3)\n"), None, "called exit while being imported"),
    "absolute imports, another folder name": (_package_with(LIAR, name="hw_abs"), None, "No module named 'homework'"),
    "a case that raises": (_package_with(ORACLE + "def load_cot(): raise RuntimeError('boom')\n"), "CoT", "RuntimeError: boom"),
    "NaN answers": (_package_with(ORACLE + "def load_cot(): return Oracle(0.0)\n"), "CoT", "accuracy=0.00 answer_rate=0.00"),
    "exit inside a case": (_package_with(ORACLE + "def load_cot(): sys.exit(0)\n"), "CoT", "the submission called exit"),
    "not implemented": (_package_with(ORACLE + "def load_cot(): raise NotImplementedError()\n"), "CoT", "Not Implemented"),
    "KeyboardInterrupt": (_package_with(ORACLE + "def load_cot(): raise KeyboardInterrupt\n"), "CoT", "KeyboardInterrupt"),
    "model over 380M parameters": (_package_with(ORACLE + "def load_cot(): return Oracle(1.0, parameters=400_000_000)\n"), "CoT", "400M parameters, over the 380M limit"),
    "a hang (also timed: test_a_hang_is_stopped_at_its_limit)": (_package_with(ORACLE + "import time\ndef load_cot(): time.sleep(3600)\n"), "CoT", "Timeout after 5 s (limit 5 s)"),
    "os._exit during a case": (_package_with(ORACLE + "import os\ndef load_cot(): os._exit(0)\n"), "CoT", "ended the process (exit code 0) before the case finished"),
    "a segfault": (_package_with(ORACLE + "import ctypes\ndef load_cot(): ctypes.string_at(0)\n"), "CoT", "died of SIGSEGV (a segmentation fault)"),
    "killed (as by the OOM killer)": (_package_with(ORACLE + "import os, signal\ndef load_cot(): os.kill(os.getpid(), signal.SIGKILL)\n"), "CoT", "died of SIGKILL (killed, out of memory?)"),
    "no data submodule": (lambda tmp: (write_package(tmp, NO_DATA), (tmp / "homework" / "data.py").unlink())[0], "CoT", "has no attribute 'data'"),
    "a benchmark that lies": (_package_with(LIAR, data=LYING_DATA), "CoT", "accuracy=1.00 answer_rate=0.10; but the reference check gives accuracy=0.10: the submission's data module disagrees; scored at 0.10"),
    "a Dataset('valid') cut to one question": (_package_with(GOOD, data=(ROOT / "homework" / "data.py").read_text() + """
_Dataset = Dataset


class Dataset(_Dataset):
    def __init__(self, split):
        super().__init__(split)
        self.data = self.data[:1]
"""), "CoT", "accuracy=1.00 answer_rate=1.00; but it asked 1 questions, 1 of the grader's first 100: the submission's Dataset('valid') is not the grader's; the reference check gives accuracy=0.01; scored at 0.01"),
    "missing adapter folder": (_package_with(LOAD_ADAPTER, modules=True), "SFT", "CheckpointError: no adapter in"),
    "an accuracy of inf": (_package_with(LIAR, data=_data_returning("float('inf')")), "CoT", "gave accuracy=inf, not a number from 0 to 1"),
    "an accuracy of 5": (_package_with(LIAR, data=_data_returning("5.0")), "CoT", "gave accuracy=5.0, not a number from 0 to 1"),
    "a sample whose question is a list": (_package_with(LIAR, data=_data_returning(sample="result.samples[0].question = ['q']")), "CoT", "a malformed sample: [['q'], "),
    "a submission that rewrites valid.json": (_package_with(REWRITES_VALID), None, "does not allow this: no writing files"),
    "a reason of 2 MB": (_package_with(ORACLE + "def load_cot(): raise RuntimeError('x' * 2_000_000)\n"), "CoT", "RuntimeError: " + "x" * 100),
}


def _mismatched_adapter(tmp):
    """An adapter trained on one tiny base, whose config names another, larger one."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from homework import loader

    package = write_package(tmp, LOAD_ADAPTER, modules=True)
    _adapter_for(package, TINY)
    other = tmp / "other_base"
    LlamaForCausalLM(LlamaConfig(**{**TINY, "hidden_size": 32})).save_pretrained(other)
    AutoTokenizer.from_pretrained(loader.embedded_dir()).save_pretrained(other)
    config_path = package / "adapter" / "adapter_config.json"
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "base_model_name_or_path": str(other)}))
    return package


CORPUS["adapter for another base model"] = (_mismatched_adapter, "SFT", "no reading outside the assignment")  # its base is a folder outside it


# the two that load a model through PEFT take half a minute each: slow
@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.slow) if "adapter" in name else name for name in CORPUS])
def test_malformed_submission(name, tmp_path, capsys, monkeypatch):
    import tempfile

    monkeypatch.setattr(submission, "MAX_MEMBER_BYTES", 2 * 2**20)
    (tmp_path / "t").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "t"))  # the grader's workdir: "../../evil.py" from it stays in tmp_path
    monkeypatch.chdir(tmp_path)
    build, title, reason = CORPUS[name]
    code, out = grade(build(tmp_path), capsys, *(["--max_case_seconds", "5"] if name.startswith("a hang") else []))
    assert reason in (line(out, title) if title else out), out
    assert out.strip().splitlines()[-1].startswith("Total")
    assert "Traceback" not in out and all(len(l) < 400 for l in out.splitlines())
    assert not list(tmp_path.rglob("evil.py")) and not Path("/etc/evil.py").exists()  # an escape would land in tmp_path
    if title:  # the other cases still ran, each with its line
        for other in ["generate, one", "batched_generate", "CoT model", "SFT model", "RFT model", "RFT extra credit"]:
            assert line(out, other)


FORKED = pytest.mark.parametrize("forked", [False, True], ids=["own process", "forked by the zygote"])


def run_cot(tmp_path: Path, package: Path, forked: bool, **limits) -> dict:
    """The CoT case of `package`, in a process of its own or forked by a zygote that has imported it."""
    zygote = Zygote(tmp_path, package.name, verbose=0) if forked else None
    try:
        assert not forked or zygote.imported() == {"ready": True}
        return run_child(tmp_path, package.name, "cot", verbose=0, zygote=zygote, **limits)
    finally:
        if zygote:
            zygote.close()


@FORKED
def test_a_hang_is_stopped_at_its_limit(tmp_path, monkeypatch, forked):
    monkeypatch.setenv("HOMEWORK_DATA", str(ROOT / "data"))
    # 30 s of sleep: a limit that did not hold would let it return a result, and the test fail rather than hang
    package = write_package(tmp_path, ORACLE + "import time\ndef load_cot(): time.sleep(30); return Oracle(1.0)\n")
    result = run_cot(tmp_path, package, forked, limit=3)
    assert result["error"] == "Timeout after 3 s (limit 3 s)"  # by the grader's clock, which starts after the import


@FORKED
def test_a_slow_case_that_keeps_working_is_not_stopped(tmp_path, monkeypatch, forked):
    # Without enforcement, a case runs as long as its processes use CPU time: here 3 s of work, 1 s allowed without.
    monkeypatch.setenv("HOMEWORK_DATA", str(ROOT / "data"))
    busy = "import time\ndef load_cot():\n    end = time.monotonic() + 3\n    while time.monotonic() < end:\n        sum(range(1000))\n    return Oracle(1.0)\n"
    package = write_package(tmp_path, ORACLE + busy)
    result = run_cot(tmp_path, package, forked, limit=60, no_progress=1)
    assert result["accuracy"] == 1.0 and "error" not in result  # it ran to the end


@FORKED
def test_a_hang_is_stopped_when_it_makes_no_progress(tmp_path, monkeypatch, forked):
    monkeypatch.setenv("HOMEWORK_DATA", str(ROOT / "data"))
    package = write_package(tmp_path, ORACLE + "import time\ndef load_cot(): time.sleep(3600)\n")
    result = run_cot(tmp_path, package, forked, limit=60, no_progress=1)
    # stopped for making no progress, not by the 60 s cap (that error says "Timeout")
    assert result["error"].startswith("no progress for 1 s (its processes used no CPU time): stopped as a hang")


def test_a_case_writes_only_in_a_temp_dir(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    package = write_package(tmp_path / "src", GOOD + "open('written.txt', 'w').write('x')\n")
    grade(package, capsys)
    assert not list(tmp_path.rglob("written.txt"))


def test_grader_cleans_up_its_temporary_directory(tmp_path, capsys, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "t"))
    (tmp_path / "t").mkdir()
    members = {"homework/__init__.py": GOOD, "homework/data.py": (ROOT / "homework" / "data.py").read_text(),
               "homework/settings.py": (ROOT / "homework" / "settings.py").read_text()}
    _, out = grade(make_zip(tmp_path / "s.zip", members), capsys)
    assert total(out) == 66
    assert list((tmp_path / "t").iterdir()) == []


def test_submission_output_is_hidden_unless_very_verbose(tmp_path, capfd):
    package = write_package(tmp_path, ORACLE + "def load_cot():\n    print('HELLO')\n    print('NOISE', file=sys.stderr)\n    return Oracle(1.0)\n")
    main([str(package), "--disable_color"])
    captured = capfd.readouterr()
    assert "HELLO" not in captured.out and "NOISE" not in captured.err
    main([str(package), "--disable_color", "-vv"])
    captured = capfd.readouterr()
    assert "HELLO" in captured.out and "NOISE" in captured.err


# Starts a process in its group and one that leaves both (a double fork after setsid), writes their pids to $PIDS,
# then does THEN.
SPAWNER = ORACLE + """
import os, signal, subprocess, sys, time

def load_cot():
    pids = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"]).pid]
    read, write = os.pipe()
    if os.fork() == 0:  # a session of its own, then a grandchild that init adopts
        os.setsid()
        if os.fork() == 0:
            os.write(write, str(os.getpid()).encode())
            time.sleep(600)
        os._exit(0)
    os.wait()
    os.close(write)
    pids.append(int(os.read(read, 32)))
    open(os.environ["PIDS"], "w").write(" ".join(map(str, pids)))
    THEN
    return Oracle(1.0)
"""


def gone(pid: int, wait: float = 10.0) -> bool:
    """Whether the process is gone (or a zombie: killed, not yet reaped) within `wait` seconds."""
    end = time.monotonic() + wait
    while time.monotonic() < end:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return True
        if stat[stat.rindex(")") + 2] == "Z":
            return True
        time.sleep(0.1)
    return False


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds a case's processes in /proc")
@FORKED
def test_nothing_a_case_starts_outlives_it(tmp_path, monkeypatch, forked):
    monkeypatch.setenv("HOMEWORK_DATA", str(ROOT / "data"))
    monkeypatch.setenv(RULES_VAR, "report")  # its processes start, so that their end can be checked
    monkeypatch.setenv("PIDS", str(tmp_path / "pids"))
    package = write_package(tmp_path, SPAWNER.replace("THEN", "pass"))
    result = run_cot(tmp_path, package, forked, limit=60)
    assert result["accuracy"] == 1.0
    pids = [int(pid) for pid in (tmp_path / "pids").read_text().split()]
    assert len(pids) == 2 and all(gone(pid) for pid in pids)


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds a case's processes in /proc")
@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_submission_that_signals_the_grader_stops_it_and_leaves_nothing_behind(tmp_path, signum):
    package = write_package(tmp_path / "src", SPAWNER.replace("THEN", f"os.kill(os.getppid(), {int(signum)}); time.sleep(600)"))
    temp = tmp_path / "temp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp), "HOMEWORK_DATA": str(ROOT / "data"), "PIDS": str(tmp_path / "pids")}
    run = subprocess.run([sys.executable, "-m", "grader", str(package), "--disable_color", "--report_rules"],  # it forks
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 128 + signum and f"grading stopped by {signal.Signals(signum).name}\n" in run.stdout
    assert "Total    0 / 25 so far" in run.stdout  # the two generation cases ran (and scored 0) before the CoT case
    pids = [int(pid) for pid in (tmp_path / "pids").read_text().split()]
    assert len(pids) == 2 and all(gone(pid) for pid in pids)
    assert not [p.name for p in temp.iterdir() if p.name.startswith(("grader-", "case-"))]


# Writes "import PID" when imported and "CASE PID COUNTER" for each case it runs, COUNTER a module global it bumps.
RECORDER = ORACLE + """
import os
COUNTER = [0]
LOG = os.environ["RECORD"]
open(LOG, "a").write(f"import {os.getpid()}\\n")

def record(name, accuracy):
    COUNTER[0] += 1
    open(LOG, "a").write(f"{name} {os.getpid()} {COUNTER[0]}\\n")
    return Oracle(accuracy)

def load_cot(): return record("cot", 1.0)
def load_sft(): return record("sft", 0.5)
def load_rft(): return record("rft", 0.75)
"""


def records(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()]


@pytest.mark.skipif(sys.platform != "linux", reason="the zygote forks: Linux only")
def test_the_submission_is_imported_once_and_each_case_runs_in_a_process_of_its_own(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RECORD", str(tmp_path / "record"))
    _, out = grade(write_package(tmp_path / "src", RECORDER), capsys, "--report_rules")  # it writes its records
    assert total(out) == 66  # as when each case imports it afresh (test_known_scores_from_a_fake_submission)
    lines = records(tmp_path / "record")
    assert [l[0] for l in lines] == ["import", "cot", "sft", "rft"]
    pids = [l[1] for l in lines]
    assert len(set(pids)) == 4  # the importer, then a new process for each case
    assert [l[2] for l in lines[1:]] == ["1", "1", "1"]  # what a case changes, the next doesn't see


# torch's OpenMP threads, started by a parallel op at import, would hang a forked child: each case imports afresh
TORCH_AT_IMPORT = "import torch\ntorch.ones(1 << 20).add_(1)\n" + RECORDER


@pytest.mark.skipif(sys.platform != "linux", reason="the zygote forks: Linux only")
def test_a_submission_that_cannot_be_forked_runs_each_case_in_a_process_that_imports_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RECORD", str(tmp_path / "record"))
    _, out = grade(write_package(tmp_path / "src", TORCH_AT_IMPORT), capsys, "--report_rules")
    assert total(out) == 66
    lines = records(tmp_path / "record")
    # the zygote's import, then one for each case: the generation cases' too, which have no BaseLLM to run
    assert [l[0] for l in lines] == ["import"] * 3 + ["import", "cot", "import", "sft", "import", "rft"]
    assert all(lines[i][1] == lines[i + 1][1] for i in (3, 5, 7))  # each case in the process that imported it


@pytest.mark.skipif(sys.platform != "linux", reason="the zygote forks: Linux only")
def test_a_case_that_kills_the_zygote_loses_only_itself(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RECORD", str(tmp_path / "record"))
    killer = RECORDER.replace('def load_cot(): return record("cot", 1.0)', "def load_cot(): os.kill(os.getppid(), 9)")
    _, out = grade(write_package(tmp_path / "src", killer), capsys, "--report_rules")
    assert "[   0 /  25 ]" in line(out, "CoT model")
    assert total(out) == 66 - 25  # SFT and RFT still ran, each in a process that imported the submission
    assert [l[0] for l in records(tmp_path / "record")] == ["import", "import", "sft", "import", "rft"]  # no import for the CoT case: it was forked


@pytest.mark.skipif(sys.platform != "linux", reason="the zygote forks: Linux only")
def test_a_zygote_that_has_ended_leaves_the_case_to_a_process_of_its_own(tmp_path, monkeypatch):
    monkeypatch.setenv("HOMEWORK_DATA", str(ROOT / "data"))
    package = write_package(tmp_path, ORACLE + "def load_cot(): return Oracle(1.0)\n")
    zygote = Zygote(tmp_path, package.name, verbose=0)
    try:
        assert zygote.imported() == {"ready": True}
        zygote.process.kill()
        zygote.process.wait()
        assert run_child(tmp_path, package.name, "cot", limit=60, verbose=0, zygote=zygote)["accuracy"] == 1.0
        assert not zygote.ready
    finally:
        zygote.close()
