"""Grade a homework folder or a submission zip as the course's grader does, each case in its own process.

    python -m grader homework                     # the package in this repo
    python -m grader submission.zip -v            # -v: tracebacks; -vv: also the submission's own output
    python -m grader homework --enforce_timeouts  # the course's GPU time limits, on any device

The submission is imported by its folder name with its folder's parent on sys.path, and reached through
the module object (`module.BaseLLM()`, `module.data.benchmark`, `module.load_cot()`, ...), as the course
does. It is imported once, and each case runs in a process forked from there (Linux; elsewhere, or where the
import has left threads that a fork would break, each case imports it in a process of its own). A case that
hangs, crashes, exits or runs out of memory scores 0 with a one-line reason; the others still run. Without enforced timeouts, a slow case runs on as long as its processes use CPU time.
"""
import argparse
import json
import math
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from . import landlock
from .cases import (CASES, NUM_ACCURACY_QUESTIONS, NUM_GENERATION_QUESTIONS, RFT_EXTRA_CREDIT, RULES_VAR, case_points,
                    linear)
from .loss import LossInputsError, course_loss
from .submission import LIMIT_BYTES, LIMIT_MB, REPO, SubmissionError, course_problems, prepare

CHILD = Path(__file__).resolve().parent / "cases.py"
IMPORT_SECONDS = 300  # the child's start and the submission's import, before a case's clock starts
# Without enforcement a slow machine may take many times the course's GPU limits, so a case is stopped only when it
# stops working: its processes have used no CPU time for NO_PROGRESS_SECONDS (a hang), or at MAX_CASE_SECONDS.
NO_PROGRESS_SECONDS = 120
MAX_CASE_SECONDS = 3600
PROGRESS_CPU_SECONDS = 0.05  # CPU time that counts as progress between two looks
DATA_VAR = "HOMEWORK_DATA"  # a folder of the course's data to grade against, as the package reads it (settings.py)
LOSS_NOTE = ("the course's loss is the mean over every position of the left-padded batch, padding included, "
             "so short answers in a batch of long ones cost loss; the second figure counts real tokens only")


MAX_BINARY_BYTES = 1 << 31  # a generation case's logits: 32 sequences of 100 tokens of 49k, in fp32, are 630 MB
KERNEL_REFUSALS = ("Permission denied", "Operation not permitted")  # EACCES and EPERM, as an error's text shows them
LOG_HEADER = "# python -m grader: report"  # a log's first line: a file without it is not replaced


def log_path_problem(path: str | None) -> str | None:
    """Why --log_path can't be written, or None: a folder, a file the grader did not write (never replaced), or a
    folder that is missing or not writable."""
    if path is None:
        return None
    target = Path(path)
    if target.is_dir():
        return f"--log_path {path} is a folder: name a file"
    if target.exists():
        try:
            with open(target, errors="replace") as f:
                first = f.readline().rstrip("\n")
        except OSError as e:
            return f"--log_path {path}: {e.strerror or e}"
        if first != LOG_HEADER:
            return f"--log_path {path} exists and is not a grader's report: name a new file"
    if not target.parent.is_dir():
        return f"--log_path {path}: no folder {target.parent}"
    if not os.access(target.parent, os.W_OK):
        return f"--log_path {path}: the folder is not writable"
    return None


class Log:
    def __init__(self, path: str | None, color: bool):
        self.file = open(path, "w") if path else None  # log_path_problem has checked it
        self.color = color
        if self.file:
            self.file.write(LOG_HEADER + "\n")

    def __call__(self, line: str, ok: bool | None = None):
        shown = f"\033[{32 if ok else 31}m{line}\033[0m" if self.color and ok is not None else line
        print(shown, flush=True)
        if self.file:
            self.file.write(line + "\n")


def become_subreaper():
    """Linux: a process that a case detaches (a new session, an empty environment) is reparented to the grader
    when its parent ends, not to init, so that `kill_orphans` still finds it."""
    if sys.platform == "linux":
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
        except (OSError, AttributeError):
            pass


def kill_orphans(keep: set[int]):
    """SIGKILL and reap every child of the grader but those in `keep`: what a case left behind, reparented here."""
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
            pid, ppid = int(entry.name), int(stat[stat.rindex(")") + 2 :].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and pid not in keep:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (OSError, ChildProcessError):
                pass


def session_cpu_seconds(session: int) -> float | None:
    """The CPU time (user and system, with that of their finished children) of every process in a session, read
    from /proc; None where there is no /proc (then only the time limits stop a case)."""
    try:
        pids = [pid for pid in os.listdir("/proc") if pid.isdigit()]
    except OSError:
        return None
    ticks = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:  # gone since the listing
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # from the state on (field 3 of proc(5)): the name may hold spaces
        if int(fields[3]) == session:  # field 6
            ticks += sum(map(int, fields[11:15]))  # fields 14 to 17: utime, stime, cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


CASE_TOKEN_VAR = "GRADER_CASE_TOKEN"  # in every case's environment, so its descendants can be found after it


def kill_descendants(token: str, spare: int | None = None):
    """SIGKILL every process whose environment holds this case's token (but `spare`): whatever the case started, even
    outside its process group and session (a double fork after setsid). Linux only (/proc); elsewhere the group kill
    alone. A process forked without exec shows its parent's environment, so a zygote's token marks its cases'."""
    needle = f"{CASE_TOKEN_VAR}={token}".encode()
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if int(entry.name) not in (os.getpid(), spare) and needle in (entry / "environ").read_bytes().split(b"\0"):
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ValueError):  # gone, or not ours to read
            continue


class Zygote:
    """A process that has imported the submission and forks a process for each case (`cases.serve`)."""

    def __init__(self, workdir: Path, package: str, verbose: int):
        self.token = f"zygote-{os.getpid()}-{time.monotonic_ns()}"
        # requests go over a socket, which can pass each case the write end of its result pipe; replies over a pipe
        self.requests, requests_in = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        replies, replies_out = os.pipe()
        self.process = subprocess.Popen([sys.executable, str(CHILD), "--serve", str(workdir), package, str(requests_in.fileno()), str(replies_out)],
                                        cwd=workdir, pass_fds=(requests_in.fileno(), replies_out), **child_streams(verbose), start_new_session=True,
                                        env={**os.environ, CASE_TOKEN_VAR: self.token})
        requests_in.close(), os.close(replies_out)
        self.replies, self.unread = replies, b""
        self.pid, self.ready = self.process.pid, False

    def reply(self, timeout: float | None) -> dict | None:
        """The next message, or None if none came within `timeout` s (None: wait) or the zygote has ended. Read
        unbuffered: select sees only what no buffer has taken yet."""
        while b"\n" not in self.unread:
            if timeout is not None and not select.select([self.replies], [], [], timeout)[0]:
                return None
            chunk = os.read(self.replies, 1 << 16)
            if not chunk:
                return None
            self.unread += chunk
        line, _, self.unread = self.unread.partition(b"\n")
        return json.loads(line)

    def imported(self) -> dict:
        """{"ready": whether cases can be forked} once the import is done, or the import's error."""
        message = self.reply(IMPORT_SECONDS)
        if message is None and self.process.poll() is None:
            return {"error": f"the submission took over {IMPORT_SECONDS} s to import", "import_failed": True}
        self.ready = bool(message and message.get("ready"))
        return message or {"ready": False}  # the zygote died while importing: the cases find out, each in its own process

    def fork(self, result_fd: int, **request) -> "Forked":
        """The process forked for one case (run_case's arguments, its result pipe's write end passed along); OSError
        if the zygote has ended."""
        socket.send_fds(self.requests, [json.dumps(request).encode()], [result_fd])
        message = self.reply(None)
        if message is None:
            raise OSError("the zygote ended")
        return Forked(self, message["pid"])

    def close(self):
        for close in (self.requests.close, lambda: os.close(self.replies)):
            try:
                close()
            except OSError:
                pass
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        kill_descendants(self.token)
        self.process.wait()


class Forked:
    """A case's process forked by the zygote, with Popen's pid, poll, wait and returncode."""

    def __init__(self, zygote: Zygote, pid: int):
        self.zygote, self.pid, self.returncode = zygote, pid, None

    def poll(self, timeout: float | None = 0) -> int | None:
        if self.returncode is None:
            message = self.zygote.reply(timeout)
            if message is not None:
                self.returncode = message["returncode"]
            elif self.zygote.process.poll() is not None:  # the zygote is gone; so is its report of the case
                self.returncode = -signal.SIGKILL
        return self.returncode

    def wait(self) -> int:
        return self.poll(timeout=None)


class ResultPipe:
    """The parent's end of a case's result pipe: `started` once the case's clock starts, `read()` the result once it
    has come whole (None until then). What arrives is data; the parent scores it."""

    def __init__(self, fd: int):
        self.fd, self.unread, self.started, self.result = fd, bytearray(), False, None
        self.header = None  # a line whose `binary` bytes are still coming

    def read(self) -> dict | None:
        while self.result is None:
            try:
                chunk = os.read(self.fd, 1 << 20)
            except BlockingIOError:
                break
            if not chunk:
                break
            self.unread += chunk
            self.take()
        return self.result

    def take(self):
        """Each whole message in what has come so far: a JSON line, and after a line that names `binary` bytes,
        those bytes (the result's `payload`)."""
        while self.result is None:
            if self.header is not None:
                if len(self.unread) < self.header["binary"]:
                    return
                payload = bytes(self.unread[: self.header["binary"]])
                del self.unread[: self.header["binary"]]
                self.result, self.header = {**self.header, "payload": payload}, None
                return
            end = self.unread.find(b"\n")
            if end < 0:
                return
            line = bytes(self.unread[:end])
            del self.unread[: end + 1]
            try:
                message = json.loads(line)
            except ValueError:
                message = None
            if message == {"started": True}:
                self.started = True
            elif not isinstance(message, dict) or not isinstance(message.get("binary", 0), int) or not (
                    0 <= message.get("binary", 0) <= MAX_BINARY_BYTES):
                self.result = {"error": "the case's result could not be read"}
            elif "binary" in message:
                self.header = message
            else:
                self.result = message


def child_streams(verbose: int) -> dict:
    output = None if verbose >= 2 else subprocess.DEVNULL  # the submission's output is ignored, as online
    return {"stdin": subprocess.DEVNULL, "stdout": output, "stderr": output}


def run_child(workdir: Path, package: str, case: str, limit: float, verbose: int, num_questions: int = 0,
              no_progress: float | None = None, zygote: Zygote | None = None) -> dict:
    """Run one case in a new process (forked by `zygote` where it is ready) and return what it measured, or {"error":
    reason}. The clock starts once the submission is imported; at `limit` seconds the process (and anything it
    started) is killed, and so it is after `no_progress` seconds in which its processes used no CPU time (None: never)."""
    results, result_fd = os.pipe()  # the case sends {"started": true}, then its result, one JSON line each
    os.set_blocking(results, False)
    pipe = ResultPipe(results)
    try:
        child = None
        if zygote is not None and zygote.ready:
            token, spare = zygote.token, zygote.pid
            try:
                child = zygote.fork(result_fd, case=case, num_questions=str(num_questions))
            except OSError:  # the zygote has ended since the last case: this one imports the submission itself
                zygote.ready = False
        if child is None:
            token, spare = f"case-{os.getpid()}-{time.monotonic_ns()}", None
            child = subprocess.Popen([sys.executable, str(CHILD), str(workdir), package, case, str(result_fd), str(num_questions)],
                                     cwd=workdir, pass_fds=(result_fd,), **child_streams(verbose), start_new_session=True,
                                     env={**os.environ, CASE_TOKEN_VAR: token})
        os.close(result_fd)
        result_fd = None
        begin, clock = time.monotonic(), None
        cpu, progressed, looked = None, None, 0.0  # CPU time at the last progress, when that was, the last look
        try:
            while child.poll() is None and pipe.read() is None:  # a result sent counts, even if a thread lingers
                now = time.monotonic()
                if clock is None and pipe.started:
                    clock = progressed = now
                if clock is not None and now - clock > limit:
                    return {"error": f"Timeout after {now - clock:.0f} s (limit {limit:.0f} s)", "timeout": True}
                if clock is not None and no_progress is not None and now - looked >= 0.25:
                    looked, used = now, session_cpu_seconds(child.pid)
                    if used is not None and (cpu is None or used - cpu >= PROGRESS_CPU_SECONDS or used < cpu):
                        cpu, progressed = used, now  # (less than before: a process ended, a new baseline)
                    elif used is not None and now - progressed > no_progress:
                        return {"error": f"no progress for {no_progress:.0f} s (its processes used no CPU time): stopped as a hang after {now - clock:.0f} s", "timeout": True}
                if clock is None and now - begin > IMPORT_SECONDS:
                    return {"error": f"the submission took over {IMPORT_SECONDS} s to import", "import_failed": True}
                select.select([pipe.fd], [], [], 0.05)  # its result, as fast as it comes, or a look at the clock
        finally:  # the case is over (done, stopped, or the grader itself is interrupted): nothing it started outlives it
            try:
                os.killpg(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            kill_descendants(token, spare)
            child.wait()
            kill_orphans({zygote.pid} if zygote is not None else set())
        if (result := pipe.read()) is not None:
            return result
        if child.returncode < 0:
            name = signal.Signals(-child.returncode).name
            why = {"SIGSEGV": "a segmentation fault", "SIGKILL": "killed, out of memory?", "SIGABRT": "aborted"}.get(name, "a signal")
            return {"error": f"the process died of {name} ({why})"}
        return {"error": f"the submission ended the process (exit code {child.returncode}) before the case finished"}
    finally:
        os.close(results)
        if result_fd is not None:
            os.close(result_fd)


MAX_REASON_CHARS = 300


def one_line(reason: str) -> str:
    """A reason as one line of at most MAX_REASON_CHARS (an exception's message can be megabytes)."""
    line = " ".join(str(reason).split())
    return line if len(line) <= MAX_REASON_CHARS else line[: MAX_REASON_CHARS - 3] + "..."


def answer_is_right(answer: float, truth: float) -> bool:
    """The course's check: within 5% of the truth, both rounded to 3 decimals first; NaN is never right. The
    grader's own copy of the rule, so that nothing a submission ships changes the answer key's verdict."""
    answer, truth = round(answer, 3), round(truth, 3)
    return abs(answer - truth) < 0.05 * abs(truth)


def reference_accuracy(answers: list, expected: list[str], truth: dict) -> float:
    """The share of the grader's `expected` questions that the model answered right, by the grader's own answer key
    (a question asked twice counts once; one the grader did not ask counts for nothing)."""
    given = {}
    for question, answer in answers:
        given.setdefault(question, answer)
    return sum(q in given and answer_is_right(given[q], truth[q]) for q in expected) / max(len(expected), 1)


def malformed(result: dict) -> str | None:
    """What is wrong with an accuracy case's result, if anything: the submission's benchmark gives the numbers."""
    for key in ("accuracy", "answer_rate"):
        value = result.get(key)
        if not isinstance(value, (int, float)) or not 0 <= value <= 1:  # NaN fails the comparison too
            return f"the submission's benchmark gave {key}={value!r}, not a number from 0 to 1"
    answers = result.get("answers")
    bad = next((a for a in answers if not (isinstance(a, list) and len(a) == 2 and isinstance(a[0], str)
                                          and isinstance(a[1], (int, float)))), None) if isinstance(answers, list) else answers
    return None if bad is None else f"the submission's benchmark gave a malformed sample: {bad!r}"


def scored_accuracy(result: dict, truth: dict, questions: int = NUM_ACCURACY_QUESTIONS) -> tuple[float, str]:
    """(the accuracy a case is scored on, the note when it isn't the benchmark's). The course scores what the
    submission's own benchmark reports; the grader checks each answer against its own key, and scores the lower of
    the two: nothing that runs in the case's process can score more than its answers earn."""
    expected = list(truth)[:questions]
    reference = reference_accuracy(result["answers"], expected, truth)
    notes, asked = [], [q for q, _ in result["answers"]]
    if asked != expected:
        same = len(set(asked) & set(expected))
        notes.append(f"it asked {len(asked)} questions, {same} of the grader's first {len(expected)}: the "
                     "submission's Dataset('valid') is not the grader's")
    if not math.isclose(reference, result["accuracy"], abs_tol=1e-9):
        notes.append(f"the reference check gives accuracy={reference:.2f}" +
                     (": the submission's data module disagrees" if asked == expected else ""))
    if reference < result["accuracy"]:
        notes.append(f"scored at {reference:.2f}")
    return min(reference, result["accuracy"]), "".join(f"; but {note}" if i == 0 else f"; {note}"
                                                       for i, note in enumerate(notes))


def score(case: str, result: dict, truth: dict, max_question: int = 0) -> tuple[float, str]:
    """(fraction of the points, detail) of a case that ran, from the data it sent. `truth`: the valid answers, in
    order, read before any case ran; `max_question`: how many of them a case asks (0: the course's number)."""
    *_, (low, high) = CASES[case]
    if case in ("generate", "batched_generate"):
        if "loss_inputs" not in result:
            return 0.0, "the case sent no logits to compute its loss from"
        try:
            loss, real_loss = course_loss(result["loss_inputs"], result.get("payload", b""))
        except LossInputsError as e:
            return 0.0, one_line(str(e))
        sent, asked = len(result["loss_inputs"]["input_ids"]), max_question or NUM_GENERATION_QUESTIONS
        if sent != asked:
            return 0.0, f"the case sent the loss of {sent} sequences, not of the grader's {asked} questions"
        return linear(loss, low, high), f"loss={loss:.2f} ({real_loss:.2f} on real tokens only)"
    if why := malformed(result):
        return 0.0, one_line(why)
    accuracy, notes = scored_accuracy(result, truth, max_question or NUM_ACCURACY_QUESTIONS)
    reported = f"accuracy={result['accuracy']:.2f} answer_rate={result['answer_rate']:.2f}"
    return linear(accuracy, low, high), reported + notes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grader", description=__doc__.splitlines()[0])
    parser.add_argument("path", help="a homework folder, or a zip holding exactly one top-level folder")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    parser.add_argument("--enforce_timeouts", action="store_true", help="apply the course's GPU limits here too (always on with a GPU)")
    parser.add_argument("--max_case_seconds", type=float, default=MAX_CASE_SECONDS, help="without enforcement: stop a case after this long")
    parser.add_argument("--no_progress_seconds", type=float, default=NO_PROGRESS_SECONDS, help="without enforcement: stop a case whose processes use no CPU time for this long (a hang)")
    parser.add_argument("--max_question", type=int, default=0, help="a smoke test on fewer questions per case (then the scores are not the course's)")
    parser.add_argument("--report_rules", action="store_true",
                        help="let actions against the course's rules through and only report them (grader/rules.py); "
                             "enforced, such an action fails and its case scores 0")
    parser.add_argument("--log_path", default=None, help="also write the report to this file")
    parser.add_argument("--disable_color", action="store_true")
    args = parser.parse_args(argv)
    if bad := bad_flags(args):
        print(f"error: {bad}", file=sys.stderr)
        return 2
    log = Log(args.log_path, color=not args.disable_color and sys.stdout.isatty())
    os.environ[RULES_VAR] = "report" if args.report_rules else "enforce"  # read by every case's process
    become_subreaper()
    # SIGTERM and SIGINT (from the shell, or from a submission that signals its parent) end the grade through
    # Interrupted, so each `finally` runs: no case's process and no temp folder is left behind.
    main_thread = threading.current_thread() is threading.main_thread()  # where signal handlers can be set
    previous = {signum: signal.signal(signum, interrupted) for signum in (signal.SIGTERM, signal.SIGINT)} if main_thread else {}
    tally = {"points": 0, "of": 0, "started": time.monotonic()}  # grade's running total, for an interrupted grade too
    try:
        return grade(args, log, tally)
    except Interrupted as e:  # run_child's finally has killed the case's processes, grade's with removed the temp folder
        log(f"grading stopped by {e}", ok=False)
        if tally["of"]:
            log(f"Total {tally['points']:>4} / {tally['of']} so far, of the cases that ran  (in {time.monotonic() - tally['started']:.0f} s)")
        else:
            log("no total: no case had run")
        return 128 + e.signum
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def bad_flags(args) -> str | None:
    """What is wrong with the grader's own flags or HOMEWORK_DATA, if anything: refused before grading, not scored as
    the submission's."""
    if os.environ.get(DATA_VAR):
        try:
            read_truth(Path(os.environ[DATA_VAR]))
        except SubmissionError as e:
            return f"{DATA_VAR}={os.environ[DATA_VAR]}: {e}"
    if args.max_question < 0:
        return f"--max_question {args.max_question}: 0 for the course's number of questions, or more"
    if problem := log_path_problem(args.log_path):
        return problem
    for name in ("max_case_seconds", "no_progress_seconds"):
        value = getattr(args, name)
        if not math.isfinite(value) or value <= 0:
            return f"--{name} {value}: a number of seconds above 0"
    return None


def read_truth(folder: Path) -> dict:
    """{question: answer} of folder/valid.json, the answers a case's are checked against; a SubmissionError naming
    what is wrong if the file can't be read as [question, number] rows. The grader reads it itself."""
    path = folder / "valid.json"
    try:
        rows = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as e:
        raise SubmissionError(f"the valid answers can't be read: {path}: {str(e).splitlines()[0][:200]}") from None
    if not isinstance(rows, list) or not rows or not all(
            isinstance(r, list) and len(r) >= 2 and isinstance(r[0], str) and isinstance(r[1], (int, float))
            and not isinstance(r[1], bool) and math.isfinite(r[1]) for r in rows):
        raise SubmissionError(f"the valid answers can't be read: {path} is not a list of [question, number] rows")
    return {q: float(a) for q, a, *_ in rows}


TEMP_PREFIX = "grader-"


def remove_stale_folders(parent: Path):
    """The temp folders of grades whose process is gone (a SIGKILL leaves them): grader-PID-..., each removed."""
    for folder in parent.glob(f"{TEMP_PREFIX}*-*"):
        try:
            os.kill(int(folder.name.split("-")[1]), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except (ValueError, PermissionError, IndexError):
            continue  # not ours, or another user's live grade


class Interrupted(Exception):
    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def interrupted(signum, frame):
    raise Interrupted(signum)


def report_case(case: str, result: dict, truth: dict, tally: dict, log, verbose: int, enforced: bool = True,
                max_question: int = 0):
    """Score one case's result, add it to `tally` and log its line (and the RFT extra credit, from the same run)."""
    title, _, points, limit, _ = CASES[case]
    broken = [one_line(line) for line in result.get("rules") or []]
    tampering = [line for line in broken if line.startswith("no changing the grader")]
    if enforced and (tampering or broken and "error" in result):
        # the grader changed, or a refused action ended the case: the case fails with the rule it broke. A refused
        # action that the code caught and went past scores what the case returns, as online, where it just fails.
        first = (tampering or broken)[0]
        more = f" (and {len(broken) - 1} more)" if len(broken) > 1 else ""
        result = {"error": f"against the course's rules: {first}{more}"}
    refused = "error" in result and any(e in result["error"] for e in KERNEL_REFUSALS)
    if enforced and landlock.abi() and refused and not broken:
        # no hook saw it (a C library's write, ctypes, a hook switched off): the kernel's restriction refused it
        result = {**result, "error": f"against the course's rules, refused by the kernel: {result['error']}"}
    if "error" in result:
        fraction, detail = 0.0, one_line(result["error"])
        if verbose and "traceback" in result:
            print(result["traceback"], file=sys.stderr)
    else:
        fraction, detail = score(case, result, truth, max_question)
        over = result["seconds"] > limit
        detail += f"  ({result['seconds']:.0f} s" + (f", over the {limit} s GPU limit, not enforced)" if over else ")")
    earned = case_points(fraction, points)
    tally["points"], tally["of"] = tally["points"] + earned, tally["of"] + points
    log(f"{title:<34} [ {earned:>3} / {points:>3} ]  {detail}", ok=earned >= points)
    if case == "batched_generate" and detail.startswith("loss="):
        log(f"  why two losses: {LOSS_NOTE}")
    for line in broken if not enforced or len(broken) > 1 or "error" not in result else []:
        log(f"  against the rules: {line}", ok=False)
    if case == "rft":
        extra_points, (low, high) = RFT_EXTRA_CREDIT
        why = one_line(result["error"]) if "error" in result else malformed(result)
        accuracy = None if why else scored_accuracy(result, truth, max_question or NUM_ACCURACY_QUESTIONS)[0]
        earned = 0 if why else case_points(linear(accuracy, low, high), extra_points)
        tally["points"] += earned
        detail = one_line(why) if why else f"accuracy={accuracy:.2f}"
        log(f"{'RFT extra credit (above 0.7)':<34} [ {earned:>3} / {extra_points:>3} ]  {detail}", ok=earned >= extra_points)


def refuse(path, reason, log) -> int:
    """Log why nothing could be graded, and a total of 0; the exit status."""
    log(f"cannot grade {path}: {reason}", ok=False)
    log(f"Total {0:>4} / 100")
    return 1


def has_gpu() -> bool:
    """Whether this machine has an NVIDIA GPU that a case can use (the course's time limits assume one), as its driver
    lists them, unless CUDA_VISIBLE_DEVICES hides them all."""
    gpus = Path("/proc/driver/nvidia/gpus")
    return os.environ.get("CUDA_VISIBLE_DEVICES") not in ("", "-1") and gpus.is_dir() and any(gpus.iterdir())


def grade(args, log, tally: dict) -> int:
    """Grade args.path and log the report, keeping `tally` (points, of how many) up to date; the exit status."""
    enforce = args.enforce_timeouts or has_gpu()
    if enforce:
        limits = ", ".join(dict.fromkeys(f"{limit} s" for _, _, _, limit, _ in CASES.values()))
        log(f"timeouts: enforced (the course's limits: {limits} per case)")
    else:
        log("timeouts: reported, not enforced (no GPU: the course's limits assume one; --enforce_timeouts applies them); "
            f"a case is stopped after {args.no_progress_seconds:.0f} s without progress, or at {args.max_case_seconds:.0f} s")

    if not args.report_rules and not landlock.abi():
        log("rules: checked by audit hooks alone (this kernel has no Landlock): what no hook sees, a C library's file "
            "write, a ctypes socket, a signal, gets through here", ok=False)
    remove_stale_folders(Path(tempfile.gettempdir()))
    with tempfile.TemporaryDirectory(prefix=f"{TEMP_PREFIX}{os.getpid()}-") as tmp:
        try:
            workdir, package = prepare(Path(args.path), Path(tmp))
            data = Path(os.environ.get(DATA_VAR) or REPO / "data")  # the grader's own, never the submission's
            # the answers to check against, read before the submission runs: it may rewrite the files in its reach
            truth = read_truth(data)
        except SubmissionError as e:
            return refuse(args.path, e, log)
        for problem in course_problems(workdir / package):
            log(f"note: {problem}", ok=False)
        if Path(args.path).is_file() and (size := Path(args.path).stat().st_size) > LIMIT_BYTES:
            log(f"warning: the zip is {size / 1e6:.1f} MB, over the {LIMIT_MB} MB limit: bundle.py and the course would "
                "refuse it", ok=False)
        zygote = Zygote(workdir, package, args.verbose) if sys.platform == "linux" else None
        try:
            imported = zygote.imported() if zygote else {}
            if imported.get("import_failed"):
                return refuse(args.path, one_line(imported["error"]), log)
            for case, (_, _, _, limit, _) in CASES.items():
                cap, no_progress = (limit, None) if enforce else (args.max_case_seconds, args.no_progress_seconds)
                result = run_child(workdir, package, case, cap, args.verbose, args.max_question, no_progress, zygote)
                if result.get("import_failed"):  # without a zygote, the first case finds it: no case can run
                    return refuse(args.path, one_line(result["error"]), log)
                report_case(case, result, truth, tally, log, args.verbose, enforced=not args.report_rules,
                            max_question=args.max_question)
        finally:
            if zygote:
                zygote.close()
    log(f"Total {tally['points']:>4} / {tally['of']}  (graded in {time.monotonic() - tally['started']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
