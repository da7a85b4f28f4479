"""Zip the homework package for submission.

    python bundle.py homework <id>        # writes <id>.zip, holding the folder homework/

Hidden and temporary files and folders (a name starting with "." or "~", ending in .tmp or .partial), caches,
checkpoints and logs are left out. A zip over the course's 50 MB (10^6 bytes each, as the grader counts) is refused.
"""
import os
import re
import sys
import zipfile
from pathlib import Path

from grader.submission import LIMIT_BYTES, LIMIT_MB

WARN_BYTES = 40 * 10**6
SKIP_DIRS = {"__pycache__", ".ipynb_checkpoints", "runs"}  # runs/: tensorboard logs


def skipped(path: Path) -> bool:
    """Caches, checkpoints, logs, and anything hidden or temporary (an interrupted save, an editor's backup)."""
    return (
        any(part in SKIP_DIRS or part.startswith(("checkpoint-", ".", "~")) or part.endswith((".tmp", ".partial"))
            for part in path.parts)
        or path.suffix in (".pyc", ".ipynb")
        or path.name.startswith("events.out.tfevents")
    )


def bundle(package: str, utid: str) -> Path:
    root = Path(package).resolve()
    if not (root / "__init__.py").is_file():
        sys.exit(f"error: {package} is not a package folder (no __init__.py)")
    if not re.fullmatch(r"[\w.-]+", utid) or utid.startswith("."):
        sys.exit(f"error: {utid!r} is not an id for the zip's name (letters, digits, '_', '-' and '.', not first)")
    output = Path(f"{utid}.zip").resolve()
    if not os.access(output.parent, os.W_OK):
        sys.exit(f"error: can't write {output}: the folder is not writable")
    files = sorted(p for p in root.rglob("*") if p.is_file() and not skipped(p.relative_to(root)))
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
    return output


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python bundle.py homework <id>")
    bundle(sys.argv[1], sys.argv[2])
