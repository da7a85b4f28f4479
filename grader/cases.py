"""The graded cases, called as the course's grader calls them, each run in a process of its own.

This file is also the child's program: `python grader/cases.py WORKDIR PACKAGE CASE RESULT_FD [QUESTIONS]`. It puts
WORKDIR (and nothing of this repo) on sys.path, restricts itself (landlock.py: no file writes, reads only where the
rules allow, no TCP, no signal out; seccomp.py: no listening socket, no xattr), imports the submission as the course
does, by its folder name, runs one case and sends what it measured, as data, down the pipe RESULT_FD: a line
{"started": true} when the case's clock starts, then one line of the result (a generation case's logits follow it as
raw bytes). The parent (`grader/__main__.py`) computes the score from it. `python grader/cases.py --serve WORKDIR
PACKAGE REQUESTS REPLIES` imports the submission once and forks a process for each case instead (`serve`). It
imports nothing but the standard library and torch, so it runs wherever the submission does.
"""
import contextlib
import importlib
import json
import math
import os
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

if __package__:
    from . import landlock, seccomp
    from .rules import Rules
else:  # run as the child's program: grader/ is on sys.path
    import landlock
    import seccomp
    from rules import Rules

RULES_VAR = "GRADER_RULES"  # enforce (the default) or report: set by the parent for its cases
MAX_PARAMETERS = 380_000_000
NUM_GENERATION_QUESTIONS = 32
NUM_ACCURACY_QUESTIONS = 100


class CaseFailed(Exception):
    """A case that can't be scored, with the one-line reason shown to the student."""


def loss_inputs(llm, questions: list[str], answers: list[str]) -> dict:
    """What the course's loss of question + answer is computed from, as data: the token ids and attention mask, as
    the submission's tokenizer makes them as it was left (left padding, after batched_generate), and the model's
    logits (`binary`: sent as raw bytes after the result's line). The parent computes the loss (loss.py)."""
    import torch

    with torch.inference_mode():
        batch = llm.tokenizer([q + a for q, a in zip(questions, answers)], return_tensors="pt", padding=True)
        input_ids, attention_mask = batch["input_ids"].to(llm.device), batch["attention_mask"].to(llm.device)
        logits = llm.model(input_ids=input_ids, attention_mask=attention_mask).logits[..., :-1, :]
        if logits.dtype not in (torch.bfloat16, torch.float16):
            logits = logits.float()
        dtype = str(logits.dtype).removeprefix("torch.")
        raw = logits.contiguous().cpu().view(torch.int16 if dtype == "bfloat16" else logits.dtype).numpy().tobytes()
        return {"loss_inputs": {"input_ids": input_ids.tolist(), "attention_mask": attention_mask.tolist(),
                                "logits_shape": list(logits.shape), "logits_dtype": dtype}, "binary": raw}


def parameter_count(model) -> int:
    """The parameters of a torch module, counted from its own tables (each tensor once), not by its methods: a
    submission's model may override `parameters`, and its parameters `numel`. Anything else is asked for its
    parameters()."""
    import torch

    if not isinstance(model, torch.nn.Module):
        return sum(p.numel() for p in model.parameters())
    seen, stack, count = set(), [model], 0
    while stack:
        module = stack.pop()
        tables = object.__getattribute__(module, "__dict__")
        for tensor in tables.get("_parameters", {}).values():
            if tensor is not None and id(tensor) not in seen:
                seen.add(id(tensor))
                with torch._C.DisableTorchFunctionSubclass():  # torch's own count, not a subclass's numel()
                    count += torch.Tensor.numel(tensor)
        stack.extend(m for m in tables.get("_modules", {}).values() if m is not None)
    return count


def check_size(llm):
    n = parameter_count(llm.model)
    if n > MAX_PARAMETERS:
        raise CaseFailed(f"the model has {n / 1e6:.0f}M parameters, over the {MAX_PARAMETERS / 1e6:.0f}M limit")
    return llm


def generation(module, batched: bool, num_questions: int | None = None) -> dict:
    llm = check_size(module.BaseLLM())
    questions = [module.data.Dataset("valid")[i][0] for i in range(num_questions or NUM_GENERATION_QUESTIONS)]
    answers = llm.batched_generate(questions) if batched else [llm.generate(q) for q in questions]
    return loss_inputs(llm, questions, answers)


def accuracy(module, loader_name: str, num_questions: int | None = None) -> dict:
    llm = check_size(getattr(module, loader_name)())
    result = module.data.benchmark(llm, module.data.Dataset("valid"), num_questions or NUM_ACCURACY_QUESTIONS)
    answers = [[s.question, float(s.answer)] for s in result.samples]
    return {"accuracy": float(result.accuracy), "answer_rate": float(result.answer_rate), "answers": answers}


# name: (title, what it runs given the module and a number of questions (None: the course's), points,
#        time limit in s on the course's GPU, bounds of the scale)
CASES = {
    "generate": ("generate, one question at a time", lambda m, n: generation(m, False, n), 10, 40, (8.0, 6.2)),
    "batched_generate": ("batched_generate", lambda m, n: generation(m, True, n), 15, 15, (8.0, 6.2)),
    "cot": ("CoT model", lambda m, n: accuracy(m, "load_cot", n), 25, 60, (0.0, 0.4)),
    "sft": ("SFT model", lambda m, n: accuracy(m, "load_sft", n), 25, 60, (0.4, 0.6)),
    "rft": ("RFT model", lambda m, n: accuracy(m, "load_rft", n), 25, 60, (0.6, 0.7)),
}
RFT_EXTRA_CREDIT = (5, (0.7, 0.8))  # points above 100, from the RFT case's accuracy
# What a case's score is computed with, as this file defines it, taken before any submission runs: a submission that
# replaces one of them (`__main__.accuracy = ...`) is found, and the case runs with these all the same
GRADER_OWN = {name: globals()[name]
              for name in ("loss_inputs", "parameter_count", "check_size", "generation", "accuracy")}
CASE_TABLE = {case: entry for case, entry in CASES.items()}


def one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def outcome(body) -> dict:
    """What body() returned, or the one-line reason it failed (and its traceback, for -v)."""
    try:
        return body()
    except CaseFailed as e:
        return {"error": str(e)}
    except NotImplementedError:
        return {"error": "Not Implemented"}
    except SystemExit:
        return {"error": "the submission called exit"}
    except BaseException as e:  # KeyboardInterrupt too: it ends this case, not the grading
        return {"error": one_line(e), "traceback": traceback.format_exc()}


RULES: Rules | None = None  # this process's audit hook, installed before the submission is imported


def watch(workdir: str, package: str) -> Rules:
    """Install the course's rules (rules.py) in this process, from the next action of the submission's on."""
    global RULES
    RULES = Rules(Path(workdir), package, enforce=os.environ.get(RULES_VAR, "enforce") != "report")
    RULES.install()
    return RULES


def import_submission(workdir: str, package: str) -> dict:
    """{"module": the submission imported as the course does}, or {"error": why, "import_failed": True}. Enforced,
    the kernel restricts this process first (landlock.py, seccomp.py); the audit hooks then only name what a breach
    touched."""
    sys.path[0] = workdir  # the script's own folder gives way to the submission's parent
    rules = watch(workdir, package)
    if rules.enforce:
        tempfile.gettempdir()  # found now, while it may be tried: the libraries ask for it later
        landlock.restrict(*rules.kernel_paths())
        seccomp.restrict()  # a socket that listens unbound, extended attributes: what Landlock does not see
    rules.checking = True
    result = outcome(lambda: {"module": importlib.import_module(package)})
    if "error" in result:
        exited = result["error"] == "the submission called exit"
        result["error"] = "the submission called exit while being imported" if exited else f"importing the submission failed: {result['error']}"
        result["import_failed"] = True
    return result


def send(fd: int, message: dict):
    """One JSON line down the result pipe, whole; a message's `binary` bytes follow the line (its length in it)."""
    payload = message.pop("binary", None)
    if payload is not None:
        message["binary"] = len(payload)
    with grader_acting():
        for data in ((json.dumps(message) + "\n").encode(), payload or b""):
            data = memoryview(data)
            while data:
                data = data[os.write(fd, data):]


def write_result(fd: int, result: dict):
    if RULES is not None:
        result["rules"] = list(RULES.breaches)
    send(fd, result)


def grader_acting():
    """A block in which the grader acts for itself (its files, its forks): the rules apply to the submission."""
    return RULES.own() if RULES is not None else contextlib.nullcontext()


def tampered() -> list[str]:
    """The grader's own functions and cases that the submission has replaced, each put back."""
    found = []
    for name, original in GRADER_OWN.items():
        if globals().get(name) is not original:
            found.append(f"no changing the grader: its {name} was replaced")
            globals()[name] = original
    for case, entry in CASE_TABLE.items():
        if CASES.get(case) is not entry:
            found.append(f"no changing the grader: its {case} case was replaced")
            CASES[case] = entry
    return found


def run_case(module, case: str, result_fd: int | str, num_questions: str = "0"):
    """One case on the imported submission; every outcome the process survives goes down the pipe `result_fd`."""
    result_fd = int(result_fd)
    send(result_fd, {"started": True})  # the parent's clock for the case starts here
    changed = tampered()  # at import
    start = time.perf_counter()
    result = outcome(lambda: CASE_TABLE[case][1](module, int(num_questions) or None))
    result["seconds"] = time.perf_counter() - start
    changed += tampered()  # during the case
    if changed and RULES is not None:
        RULES.breaches.extend(changed)
    write_result(result_fd, result)


def run(workdir: str, package: str, case: str, result_fd: str, num_questions: str = "0"):
    """Import the submission and run one case in this process (an import that fails is sent marked `import_failed`:
    no case can run)."""
    imported = import_submission(workdir, package)
    if "error" in imported:
        write_result(int(result_fd), imported)
    else:
        run_case(imported["module"], case, result_fd, num_questions)


def forkable(probe_seconds: float = 10.0) -> bool:
    """Whether a process forked from this one can run a case: Linux, no Python thread but this one, and, where torch
    is loaded, a forked probe that runs one of its parallel ops within `probe_seconds`. (Threads don't come along
    into a forked child: after torch has run a parallel op, OpenMP's pool is gone there but still counted on, and the
    child's first parallel op waits forever. The probe tells that apart from the idle thread servers that BLAS
    libraries start, which are fork-safe.)"""
    if sys.platform != "linux" or threading.active_count() != 1:
        return False
    if "torch" not in sys.modules:
        return True
    sys.stdout.flush(), sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            sys.modules["torch"].ones(1 << 20).add_(1)  # above torch's grain size: runs on its OpenMP threads
            code = 0
        finally:
            os._exit(code)
    deadline = time.monotonic() + probe_seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status) == 0
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return False


def serve(workdir: str, package: str, requests: str, replies: str):
    """The zygote: import the submission once, as the course's grader does, then run each case that the parent asks
    for in a process forked from here. A case so skips the import (torch, transformers and PEFT come with ours: about
    10 s on 2 cores) and is still a process of its own, which a crash, an exit or a hang takes alone, and which
    changes nothing that the next case sees. Its output goes where the zygote's goes, as a case's process's would.

    The parent sends requests over a UNIX socket (file descriptor `requests`), one message each: run_case's arguments
    as JSON, with the write end of the case's result pipe passed along (SCM_RIGHTS). Replies go over a pipe
    (`replies`), one JSON line a message: the import's outcome ({"ready": bool}, or the import's error), then for each case
    {"pid": ...} and, once it has ended, {"returncode": ...}. Not ready (not forkable): the parent runs each case
    by `run`, in a process of its own."""
    inbox, outbox = socket.socket(fileno=int(requests)), os.fdopen(int(replies), "w")

    def reply(message: dict):
        outbox.write(json.dumps(message) + "\n")
        outbox.flush()

    imported = import_submission(workdir, package)
    with grader_acting():
        ready = "error" not in imported and forkable()
    reply({"ready": ready} if "error" not in imported else imported)
    if not ready:
        return
    module = imported["module"]
    handled = (signal.SIGTERM, signal.SIGINT)
    for signum in handled:  # a case that signals its parent signals the grader, as it would without a zygote
        signal.signal(signum, lambda signum, frame: os.kill(os.getppid(), signum))
    while True:
        with grader_acting():
            message, fds, _, _ = socket.recv_fds(inbox, 1 << 16, 1)
        if not message or not fds:
            return  # the parent has closed the socket: the grade is over
        request = {**json.loads(message), "result_fd": fds[0]}
        sys.stdout.flush(), sys.stderr.flush()  # or the child would write what is buffered here once more
        with grader_acting():
            pid = os.fork()
        if pid == 0:
            code = 1
            try:
                for signum in handled:
                    signal.signal(signum, signal.SIG_DFL)
                inbox.close(), outbox.close()
                os.setsid()  # a session of its own, as the parent starts a case's process: its CPU time, its kill
                run_case(module, **request)
                code = 0
            finally:
                sys.stdout.flush(), sys.stderr.flush()
                os._exit(code)
        os.close(fds[0])  # the case's process holds the result pipe now
        reply({"pid": pid})
        _, status = os.waitpid(pid, 0)
        reply({"returncode": os.waitstatus_to_exitcode(status)})


def linear(value: float, low: float, high: float) -> float:
    """0 at `low`, 1 at `high`, linear between, clipped. Works for falling scales too (low > high)."""
    if value is None or math.isnan(value):
        return 0.0
    return min(1.0, max(0.0, (value - low) / (high - low)))


def case_points(fraction: float, points: int) -> int:
    """The course's rounding: half up."""
    return int(fraction * points + 0.5)


if __name__ == "__main__":
    if sys.argv[1] == "--serve":
        serve(*sys.argv[2:6])
    else:
        run(*sys.argv[1:6])
