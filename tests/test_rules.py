"""The course's rules, mirrored by the local grader (grader/rules.py): hostile and careless submissions, as reported."""
import os
import re
import socket
import sys
import threading
from pathlib import Path

import pytest

from tests.test_grader import GOOD, echo_package, grade, line, main, total, write_package

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="audits what a case's process does on Linux")


def with_cot(body: str) -> str:
    """GOOD, its CoT case doing `body` (indented code) before it returns its model."""
    return GOOD.replace("def load_cot(): return Oracle(1.0)",
                        "def load_cot():\n" + "".join(f"    {l}\n" for l in body.strip().splitlines()) + "    return Oracle(1.0)")


@linux_only
def test_a_write_to_tmp_fails_and_scores_0_naming_the_file_and_the_line(tmp_path, capsys):
    target = tmp_path / "written.txt"
    _, out = grade(write_package(tmp_path / "src", with_cot(f"open({str(target)!r}, 'w').write('x')")), capsys)
    cot = line(out, "CoT model")
    assert "[   0 /  25 ]" in cot and f"no writing files: {target}" in cot and "homework/__init__.py:" in cot
    assert not target.exists()  # refused, as online
    assert total(out) == 66 - 25


@linux_only
def test_bytes_to_a_local_socket_are_refused(tmp_path, capsys):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port, received = server.getsockname()[1], []
    threading.Thread(target=lambda: received.append(server.accept()), daemon=True).start()
    body = f"import socket\ns = socket.socket()\ns.connect(('127.0.0.1', {port}))\ns.sendall(b'secret')"
    _, out = grade(write_package(tmp_path / "src", with_cot(body)), capsys)
    server.close()
    assert "[   0 /  25 ]" in line(out, "CoT model") and "no network: socket.connect ('127.0.0.1'" in line(out, "CoT model")
    assert not received


@linux_only
def test_a_read_outside_the_assignment_shows_no_text(tmp_path, capsys):
    secret = tmp_path / "secret.txt"
    secret.write_text("the-secret-text")
    _, out = grade(write_package(tmp_path / "src", with_cot(f"raise RuntimeError(open({str(secret)!r}).read())")), capsys)
    assert f"no reading outside the assignment: {secret}" in line(out, "CoT model")
    assert "the-secret-text" not in out


@linux_only
def test_a_detached_child_is_refused_and_nothing_outlives_the_grade(tmp_path, capsys):
    marker = tmp_path / "alive"
    code = f"import time; time.sleep(3); open({str(marker)!r}, 'w')"
    body = f"import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', {code!r}], start_new_session=True, env={{}})"
    _, out = grade(write_package(tmp_path / "src", with_cot(body)), capsys)
    assert "[   0 /  25 ]" in line(out, "CoT model") and "no forking: subprocess.Popen" in line(out, "CoT model")
    # reported, not enforced: the child starts, and is killed with its case
    _, out = grade(write_package(tmp_path / "src2", with_cot(body)), capsys, "--report_rules")
    assert "[  25 /  25 ]" in line(out, "CoT model") and "against the rules: no forking" in out
    import time

    time.sleep(4)
    assert not marker.exists()


@linux_only
def test_reported_rules_keep_the_score(tmp_path, capsys):
    target = tmp_path / "written.txt"
    _, out = grade(write_package(tmp_path / "src", with_cot(f"open({str(target)!r}, 'w').write('x')")), capsys,
                   "--report_rules")
    assert total(out) == 66 and f"  against the rules: no writing files: {target}" in out and target.exists()


def test_patching_the_graders_functions_scores_0_with_a_note(tmp_path, capsys):
    patch = "import __main__\n__main__.loss_inputs = lambda *a: {}\n__main__.accuracy = lambda *a, **k: " \
            "{'accuracy': 1.0, 'answer_rate': 1.0, 'answers': []}\n"
    _, out = grade(write_package(tmp_path / "src", patch + GOOD), capsys)
    assert "against the course's rules: no changing the grader: its loss_inputs was replaced" in line(out, "SFT model")
    assert total(out) == 0


def test_a_model_that_hides_its_parameters_or_lies_about_their_size_is_counted_all_the_same(tmp_path, capsys):
    big = GOOD.replace("def load_cot(): return Oracle(1.0)", '''def load_cot():
    import torch

    class Lying(torch.nn.Parameter):
        def numel(self):
            return 1

    class Hiding(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.empty(0).new_empty((200_000_000,), device="meta"))
            self.bias = Lying(torch.empty(0).new_empty((200_000_000,), device="meta"))

        def parameters(self, recurse=True):
            return iter([])

    oracle = Oracle(1.0)
    oracle.model = Hiding()
    return oracle''')
    _, out = grade(write_package(tmp_path / "src", big), capsys)
    assert "400M parameters, over the 380M limit" in line(out, "CoT model")


def test_a_zip_over_50_mb_but_under_50_mib_is_refused_by_bundle(tmp_path):
    import subprocess

    package = write_package(tmp_path / "src", GOOD)
    (package / "big.bin").write_bytes(os.urandom(51 * 10**6))  # 51 MB, 48.6 MiB: random bytes don't compress
    result = subprocess.run([sys.executable, str(Path(__file__).parent.parent / "bundle.py"), str(package), "abc"],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode != 0 and "over the 50 MB limit" in result.stderr and len(result.stderr.splitlines()) == 1
    assert not list(tmp_path.glob("*abc.zip*"))


@pytest.mark.parametrize("utid", ["", ".hidden", "a/b", "--help", "-x", "x" * 300])
def test_bundle_refuses_an_id_that_names_no_zip(tmp_path, utid):
    import subprocess

    package = write_package(tmp_path / "src", GOOD)
    result = subprocess.run([sys.executable, str(Path(__file__).parent.parent / "bundle.py"), str(package), utid],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode != 0 and result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
    assert not list(tmp_path.glob("*.zip*"))


@pytest.mark.parametrize("argv, written", [(["x.zip"], "x.zip"), (["--help"], None), (["-h"], None)])
def test_bundle_names_the_zip_for_the_id_or_prints_its_usage(tmp_path, argv, written):
    import subprocess

    package = write_package(tmp_path / "src", GOOD)
    command = [sys.executable, str(Path(__file__).parent.parent / "bundle.py")] + ([str(package)] if written else [])
    result = subprocess.run(command + argv, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0 and [p.name for p in tmp_path.glob("*.zip*")] == ([written] if written else [])
    assert written or result.stdout.startswith("usage: python bundle.py homework <id>")


def test_bundle_packs_no_hidden_or_temporary_folder(tmp_path):
    import subprocess
    import zipfile

    package = write_package(tmp_path / "src", GOOD)
    (package / ".rft_model-x1y2").mkdir()  # what a kill during an adapter save leaves
    (package / ".rft_model-x1y2" / "adapter_model.safetensors").write_bytes(b"half")
    (package / "notes.txt.tmp").write_text("x")
    subprocess.run([sys.executable, str(Path(__file__).parent.parent / "bundle.py"), str(package), "abc"],
                   cwd=tmp_path, capture_output=True, check=True)
    names = zipfile.ZipFile(tmp_path / "abc.zip").namelist()
    assert sorted(names) == ["homework/__init__.py", "homework/data.py", "homework/settings.py"]


@pytest.mark.parametrize("flags, message", [(["--max_question", "-1"], "--max_question -1"),
                                            (["--max_case_seconds", "-5"], "--max_case_seconds -5"),
                                            (["--max_case_seconds", "nan"], "--max_case_seconds nan")])
def test_bad_grader_flags_are_refused_before_grading(tmp_path, capsys, flags, message):
    from grader.__main__ import main

    code = main([str(write_package(tmp_path / "src", GOOD)), "--disable_color", *flags])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == "" and captured.err.startswith(f"error: {message}")
    assert len(captured.err.splitlines()) == 1


def test_a_malformed_homework_data_is_refused_before_grading(tmp_path, capsys, monkeypatch):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "valid.json").write_text("[[")
    monkeypatch.setenv("HOMEWORK_DATA", str(tmp_path / "data"))
    from grader.__main__ import main

    code = main([str(write_package(tmp_path / "src", GOOD)), "--disable_color"])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == "" and captured.err.startswith("error: HOMEWORK_DATA=")
    assert len(captured.err.splitlines()) == 1


@linux_only
def test_a_killed_grades_temp_folder_is_removed_by_the_next(tmp_path, capsys, monkeypatch):
    import subprocess
    import tempfile

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = Path(tempfile.gettempdir()) / f"grader-{dead.pid}-abcdefgh"
    (stale / "homework").mkdir(parents=True)
    grade(write_package(tmp_path / "src", GOOD), capsys)
    assert not stale.exists()


def test_a_log_path_never_replaces_a_file_the_grader_did_not_write(tmp_path, capsys):
    from grader.__main__ import LOG_HEADER, main

    package = write_package(tmp_path / "src", GOOD)
    mine = tmp_path / "notes.py"
    mine.write_text("a student's own file\n")
    for path, message in [(mine, "exists and is not a grader's report"), (tmp_path, "is a folder"),
                          (tmp_path / "no" / "log.txt", "no folder")]:
        code = main([str(package), "--disable_color", "--log_path", str(path)])
        captured = capsys.readouterr()
        assert code == 2 and captured.out == "" and len(captured.err.splitlines()) == 1 and message in captured.err
    assert mine.read_text() == "a student's own file\n"
    log = tmp_path / "grade.log"
    log.write_text(LOG_HEADER + "\nan earlier grade\n")  # a report of the grader's own is replaced
    code, out = grade(package, capsys, "--log_path", str(log), "--max_question", "1")
    assert code == 0 and log.read_text().splitlines() == [LOG_HEADER] + out.splitlines()


def test_the_answer_key_and_the_module_names_are_the_graders(tmp_path, capsys):
    from grader.submission import REPO, prepare

    package = write_package(tmp_path / "src", GOOD)
    (tmp_path / "src" / "data").mkdir()
    (tmp_path / "src" / "data" / "valid.json").write_text('[["How many gram are there per 6 kg?", 1.0]]')
    workdir, name = prepare(package, tmp_path / "work")  # the data/ beside a folder is not the answer key
    assert name == "homework" and (workdir / "data" / "valid.json").read_bytes() == (REPO / "data" / "valid.json").read_bytes()
    for named in ("data", "rules", "cases"):  # the data folder's name, the grader's modules'
        code, out = grade(write_package(tmp_path / named, GOOD, name=named), capsys)
        assert code == 1 and f"the package is named {named!r}, as the grader's data or one of its modules" in out


def test_bundle_leaves_out_links_logs_and_zips_and_says_what_the_course_would_fail(tmp_path):
    import json
    import subprocess
    import zipfile

    package = write_package(tmp_path / "src", GOOD, name="hw")
    secret = tmp_path / "secret.txt"
    secret.write_text("outside the package")
    (package / "outside.txt").symlink_to(secret)
    (package / "train.log").write_text("log")
    (package / "secrets.json").write_text('{"token": "x"}')
    (package / "old.zip").write_bytes(b"PK")
    (package / "sft_model").mkdir()
    (package / "sft_model" / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "embedded:x"}))
    result = subprocess.run([sys.executable, str(Path(__file__).parent.parent / "bundle.py"), str(package), "abc"],
                            cwd=tmp_path, capture_output=True, text=True, check=True)
    names = zipfile.ZipFile(tmp_path / "abc.zip").namelist()
    assert sorted(names) == ["hw/__init__.py", "hw/data.py", "hw/settings.py", "hw/sft_model/adapter_config.json"]
    assert "left out 1 link(s), which may name files outside the package: outside.txt" in result.stdout
    warnings = [l for l in result.stdout.splitlines() if l.startswith("warning: ")]
    assert warnings == ["warning: the folder is named 'hw': the course imports homework",
                        "warning: adapters trained on another base model than the course's "
                        "HuggingFaceTB/SmolLM2-360M-Instruct: sft_model (embedded:x); they would fail online. The "
                        "course's: python -m homework.recipes --checkpoint HuggingFaceTB/SmolLM2-360M-Instruct "
                        "--output_dir runs/360m --ship (a GPU)"]


KERNEL_PROBES = """
import __main__, ctypes, multiprocessing, os, signal, socket, sqlite3, struct, sys, tempfile, torch
libc = ctypes.CDLL(None, use_errno=True)


def c_connect():
    fd = libc.socket(socket.AF_INET, socket.SOCK_STREAM, 0)
    address = struct.pack("=H", socket.AF_INET) + struct.pack("!H4s8x", PORT, socket.inet_aton("127.0.0.1"))
    if libc.connect(fd, address, len(address)) != 0 or libc.send(fd, b"secret", 6, 0) != 6:
        raise OSError(ctypes.get_errno(), "refused")


def c_read():
    fd, text = libc.open(SECRET.encode(), os.O_RDONLY), ctypes.create_string_buffer(100)
    if fd < 0 or libc.read(fd, text, 100) <= 0:
        raise OSError(ctypes.get_errno(), "refused")
    return text.value


def c_system():
    if libc.system(f"echo x > {OUT}/system.txt".encode()) != 0:
        raise OSError("refused")


def spawned():
    child = multiprocessing.get_context("spawn").Process(target=os.mkdir, args=(OUT + "/spawned",))
    child.start()
    child.join()
    if child.exitcode != 0:
        raise OSError("refused")


def checking_off():
    __main__.RULES.checking = False
    try:
        open(OUT + "/unchecked.txt", "w")
    finally:
        __main__.RULES.checking = True


def as_the_grader():
    with __main__.RULES.own():
        open(OUT + "/own.txt", "w")


def no_judge():
    rules, judge = sys.modules["rules"], sys.modules["rules"].Rules.judge
    rules.Rules.judge = lambda *a: None
    try:
        open(OUT + "/unjudged.txt", "w")
    finally:
        rules.Rules.judge = judge


def as_tempfile():
    code = compile("def _get_default_tempdir(path):\\n    open(path, 'w')\\n", tempfile.__file__, "exec")
    scope = {}
    exec(code, scope)
    scope["_get_default_tempdir"](OUT + "/tempfile.txt")


def breaches_cleared():
    try:
        open(OUT + "/cleared.txt", "w")
    finally:
        __main__.RULES.breaches.clear()


PROBES = {
    "torch.save": lambda: torch.save({"x": 1}, OUT + "/a.pt"),
    "safetensors": lambda: __import__("safetensors.torch").torch.save_file({"x": torch.zeros(1)}, OUT + "/b.st"),
    "tokenizers": lambda: __import__("tokenizers").Tokenizer(__import__("tokenizers").models.BPE()).save(OUT + "/c"),
    "torch.from_file": lambda: torch.from_file(OUT + "/d.bin", shared=True, size=8),
    "sqlite3": lambda: sqlite3.connect(OUT + "/e.db").execute("create table t (x)"),
    "mkfifo": lambda: os.mkfifo(OUT + "/f"),
    "mknod": lambda: os.mknod(OUT + "/g"),
    "setxattr": lambda: libc.setxattr(KEPT.encode(), b"user.x", b"1", 1, 0) == 0 or os.setxattr(KEPT, "user.y", b"1"),
    "checking off": checking_off,
    "the grader's own block": as_the_grader,
    "no judge": no_judge,
    "a tempfile.py function": as_tempfile,
    "breaches cleared": breaches_cleared,
    "ctypes connect": c_connect,
    "listen": lambda: socket.socket().listen(),
    "ctypes system": c_system,
    "multiprocessing spawn": spawned,
    "a read by dir_fd": lambda: os.read(os.open(os.path.relpath(SECRET, HERE), os.O_RDONLY, dir_fd=os.open(HERE, 0)), 99),
    "ctypes read": c_read,
    "signal to the grader": lambda: os.kill(GRADER, signal.SIGCONT),
}
outcomes = []
for name, probe in PROBES.items():
    try:
        got = probe()
        outcomes.append(f"{name} went through" + (f" ({got!r})" if isinstance(got, bytes) else ""))
    except Exception:
        outcomes.append(f"{name} refused")
__main__.RULES.breaches.clear()  # so that the case's line is this error, every outcome, not the first breach named
raise RuntimeError(", ".join(outcomes))
"""


@pytest.mark.skipif(not __import__("grader.landlock").landlock.abi(), reason="the kernel has no Landlock")
def test_the_kernel_refuses_what_no_audit_hook_sees(tmp_path, capsys):
    """C and Rust writers (torch, safetensors, tokenizers, sqlite), special files, xattrs, ctypes' own socket, read and
    system calls, a spawned interpreter, a signal to the grader, and writes after the hooks are switched off from
    inside: the kernel's restriction (landlock.py, seccomp.py) refuses each."""
    out_dir, secret_dir = tmp_path / "out", tmp_path / "private"
    out_dir.mkdir(), secret_dir.mkdir()
    (secret_dir / "secret.txt").write_text("the-secret-text")
    kept = out_dir / "kept.txt"
    kept.write_text("")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    received = []
    threading.Thread(target=lambda: received.append(server.accept()[0].recv(100)), daemon=True).start()
    constants = ("import os\n"
                 f"OUT, PORT, GRADER, KEPT = {str(out_dir)!r}, {server.getsockname()[1]}, {os.getpid()}, {str(kept)!r}\n"
                 f"SECRET = {str(secret_dir / 'secret.txt')!r}\nHERE = os.path.dirname(os.path.abspath(__file__))\n")
    package = write_package(tmp_path / "src", with_cot(constants + KERNEL_PROBES))
    main([str(package), "--disable_color", "--max_question", "1", "-v"])  # -v: the whole message, in the traceback
    out, err = capsys.readouterr()
    server.close()
    outcomes = err.split("RuntimeError: ")[-1].splitlines()[0]
    assert "[   0 /  25 ]" in line(out, "CoT model") and "went through" not in outcomes, outcomes
    names = re.findall(r'^    "(.+?)":', KERNEL_PROBES.split("PROBES = {")[1].split("}\noutcomes")[0], re.M)
    assert [f"{name} refused" for name in names] == outcomes.split(", ") and "the-secret" not in out + err
    assert list(out_dir.iterdir()) == [kept] and os.listxattr(kept) == [] and not received


def test_a_forged_score_is_not_scored(tmp_path, capsys):
    """Every number is computed in the grader's parent from data: a generation case's loss from the logits it sends
    (test_all_right_and_all_wrong patches torch's cross-entropy), an accuracy case's from the answers, checked against
    the grader's key. A submission that rewrites the code of the grader's `accuracy`, rebinds its `generation` where
    the tamper check looks too, or replaces its case tables scores what its model earns (here, nothing)."""
    forgeries = """
import __main__


def forged(module, loader_name, num_questions=None):
    return {"accuracy": 1.0, "answer_rate": 1.0, "answers": []}


__main__.accuracy.__code__ = forged.__code__
__main__.generation = __main__.GRADER_OWN["generation"] = lambda *a: {"loss": 0.0, "real_loss": 0.0}
case = ("generate, one question at a time", lambda m, n: {"loss": 0.0, "real_loss": 0.0}, 10, 40, (8.0, 6.2))
__main__.CASES, __main__.CASE_TABLE = {**__main__.CASES, "generate": case}, {**__main__.CASE_TABLE, "generate": case}
"""
    package = echo_package(tmp_path, 0.0, miss=1)
    (package / "__init__.py").write_text((package / "__init__.py").read_text() + forgeries)
    _, out = grade(package, capsys)
    for title, points in (("generate, one", 10), ("batched_generate", 15)):
        assert f"[   0 / {points:>3} ]  the case sent no logits to compute its loss from" in line(out, title), out
    for title in ("CoT model", "SFT model", "RFT model"):
        assert "[   0 /  25 ]  accuracy=1.00" in line(out, title) and "scored at 0.00" in line(out, title), out
    assert total(out) == 0


def test_a_result_sent_counts_though_a_thread_lingers(tmp_path, capsys):
    """A non-daemon thread keeps the case's process alive after the case; its result came down the pipe, and counts."""
    body = "import threading, time\nthreading.Thread(target=time.sleep, args=(3600,)).start()"
    _, out = grade(write_package(tmp_path / "src", with_cot(body)), capsys, "--max_question", "1")
    assert "[  25 /  25 ]" in line(out, "CoT model")


def test_without_landlock_the_grade_says_so_at_the_top(tmp_path, capsys, monkeypatch):
    from grader import landlock

    monkeypatch.setattr(landlock, "abi", lambda: 0)
    _, out = grade(write_package(tmp_path / "src", GOOD), capsys, "--max_question", "1")
    assert out.splitlines()[1].startswith("rules: checked by audit hooks alone (this kernel has no Landlock)")


@linux_only
def test_a_refused_write_the_code_catches_is_reported_and_the_case_scored_on_what_it_returns(tmp_path, capsys):
    """As online, where the write just fails: the case goes on, is scored, and the report names the refused write.
    A write no hook sees (torch's C++ writer) that ends a case is named as the kernel's refusal."""
    target = tmp_path / "cache.txt"
    body = f"try:\n    open({str(target)!r}, 'w').write('x')\nexcept PermissionError:\n    pass"
    package = with_cot(body).replace("def load_sft(): return Oracle(0.5)",
                                     f"def load_sft():\n    __import__('torch').save(1, {str(tmp_path / 'a.pt')!r})")
    _, out = grade(write_package(tmp_path / "src", package), capsys, "--max_question", "1")
    assert "[  25 /  25 ]" in line(out, "CoT model") and f"  against the rules: no writing files: {target}" in out
    assert not target.exists() and not (tmp_path / "a.pt").exists()
    if __import__("grader.landlock").landlock.abi():
        assert "against the course's rules, refused by the kernel: RuntimeError: " in line(out, "SFT model")
