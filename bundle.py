"""Zip the homework package for submission.

    python bundle.py homework <id>        # writes <id>.zip, holding the folder homework/ (an id ending in .zip: <id>)

Hidden and temporary files and folders (a name starting with "." or "~", ending in .tmp or .partial), caches,
checkpoints, logs, zips, keys, secrets and links are left out. It warns where the course's grader would fail what ours
passes: a folder not named homework, adapters trained on another base model than the course's SmolLM2-360M-Instruct.
A zip over the course's 50 MB (10^6 bytes each, as the grader counts) is refused.
"""
import os
import re
import sys
import zipfile
from pathlib import Path

from grader.submission import LIMIT_BYTES, LIMIT_MB, course_problems

WARN_BYTES = 40 * 10**6
SKIP_DIRS = {"__pycache__", ".ipynb_checkpoints", "runs"}  # runs/: tensorboard logs
SKIP_SUFFIXES = {".pyc", ".ipynb", ".log", ".zip", ".pem", ".key"}  # caches, notebooks, logs, zips, keys
SECRET_NAMES = ("secret", "credential")  # secrets.json, credentials.txt, ...


def skipped(path: Path) -> bool:
    """Caches, checkpoints, logs, zips, keys and secrets, and anything hidden or temporary (an interrupted save, an
    editor's backup, a .env)."""
    return (
        any(part in SKIP_DIRS or part.startswith(("checkpoint-", ".", "~")) or part.endswith((".tmp", ".partial"))
            for part in path.parts)
        or path.suffix in SKIP_SUFFIXES
        or path.name.lower().startswith(SECRET_NAMES)
        or path.name.startswith("events.out.tfevents")
    )


def linked(root: Path, path: Path) -> bool:
    """A link, or a file under a linked folder: what it names may be outside the package."""
    return any((root / Path(*path.parts[: i + 1])).is_symlink() for i in range(len(path.parts)))


def bundle(package: str, utid: str) -> Path:
    root = Path(package).resolve()
    if not (root / "__init__.py").is_file():
        sys.exit(f"error: {package} is not a package folder (no __init__.py)")
    utid = utid.removesuffix(".zip")
    if not re.fullmatch(r"\w[\w.-]{0,99}", utid):
        sys.exit(f"error: {utid[:120]!r} is not an id for the zip's name (up to 100 letters, digits, '_', '-' and '.', "
                 "a letter or digit first)")
    output = Path(f"{utid}.zip").resolve()
    if not os.access(output.parent, os.W_OK):
        sys.exit(f"error: can't write {output}: the folder is not writable")
    found = [p for p in root.rglob("*") if not skipped(p.relative_to(root))]
    if links := sorted(str(p.relative_to(root)) for p in found if p.is_symlink()):
        print(f"left out {len(links)} link(s), which may name files outside the package: {', '.join(links)}")
    files = sorted(p for p in found if p.is_file() and not linked(root, p.relative_to(root)))
    tmp = output.with_name(f".{output.name}.partial")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for f in files:
                zf.write(f, Path(root.name) / f.relative_to(root))
                print(f"  {root.name}/{f.relative_to(root)}  {f.stat().st_size / 1e3:.0f} kB")
    except OSError as e:
        tmp.unlink(missing_ok=True)
        sys.exit(f"error: can't write {output}: {e.strerror or e}")
    size = tmp.stat().st_size
    if size > LIMIT_BYTES:
        tmp.unlink()
        sys.exit(f"error: the zip would be {size / 1e6:.1f} MB, over the {LIMIT_MB} MB limit: "
                 "remove large files (checkpoints, logs)")
    tmp.replace(output)
    print(f"wrote {output} ({len(files)} files, {size / 1e6:.1f} MB)")
    if size > WARN_BYTES:
        print(f"warning: {size / 1e6:.1f} MB is close to the {LIMIT_MB} MB limit")
    for problem in course_problems(root):
        print(f"warning: {problem}")
    return output


USAGE = "usage: python bundle.py homework <id>   (writes <id>.zip)"

if __name__ == "__main__":
    if sys.argv[1:] in (["-h"], ["--help"]):
        print(USAGE)
        sys.exit(0)
    if len(sys.argv) != 3:
        sys.exit(USAGE)
    bundle(sys.argv[1], sys.argv[2])
