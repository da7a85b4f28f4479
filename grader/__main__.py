"""Grade a homework folder or a submission zip, as the course's online grader would.

    python -m grader homework               # the package in this repo
    python -m grader submission.zip -v      # -v: tracebacks and one line per case; -vv: also the submission's prints
"""
import argparse
import sys
import tempfile
from pathlib import Path

import torch

from .grader import GRADERS
from .submission import SubmissionError, import_package, unpack


class Log:
    def __init__(self, path: str | None, color: bool):
        self.file = open(path, "w") if path else None
        self.color = color

    def __call__(self, line: str, ok: bool | None = None):
        shown = f"\033[{32 if ok else 31}m{line}\033[0m" if self.color and ok is not None else line
        print(shown, flush=True)
        if self.file:
            self.file.write(line + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grader", description=__doc__.splitlines()[0])
    parser.add_argument("path", help="a homework folder, or a zip holding exactly one top-level folder")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    parser.add_argument("--log_path", default=None, help="also write the report to this file")
    parser.add_argument("--disable_color", action="store_true")
    args = parser.parse_args(argv)
    log = Log(args.log_path, color=not args.disable_color and sys.stdout.isatty())

    on_gpu = torch.cuda.is_available()
    if on_gpu:
        log("timeouts: enforced (GPU found; the course's limits assume a GPU)")
    else:
        log("timeouts: reported, not enforced (no GPU: the course's limits assume one)")

    score, total = 0, 0
    with tempfile.TemporaryDirectory(prefix="grader-") as workdir:
        try:
            module = import_package(unpack(Path(args.path), Path(workdir)))
        except SubmissionError as e:
            log(f"cannot grade {args.path}: {e}", ok=False)
            log(f"Total {0:>4} / 100")
            return 1
        for grader_class in GRADERS:
            results = grader_class(module, args.verbose, enforce_timeouts=on_gpu).run()
            earned = sum(r["earned"] for r in results)
            possible = sum(r["points"] for r in results if not r["extra_credit"])
            score, total = score + earned, total + possible
            details = "; ".join(dict.fromkeys(r["detail"] for r in results))  # the extra-credit case repeats its twin's
            log(f"{grader_class.title:<22} [ {earned:>3} / {possible:>3} ]  {details}", ok=earned >= possible)
            for r in results if args.verbose else []:
                extra = "  (extra credit)" if r["extra_credit"] else ""
                log(f"  - {r['name']:<34} [ {r['earned']:>2} / {r['points']:>2} ]  {r['detail']}{extra}")
    log(f"Total {score:>4} / {total}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
