"""Zip the homework package for submission.

    python bundle.py homework <id>        # writes <id>.zip, holding the folder homework/
"""
import sys
import zipfile
from pathlib import Path

WARN_MB, LIMIT_MB = 40, 50
SKIP_DIRS = {"__pycache__", ".ipynb_checkpoints", "runs"}  # runs/: tensorboard logs


def skipped(path: Path) -> bool:
    return (
        any(part in SKIP_DIRS or part.startswith("checkpoint-") for part in path.parts)
        or path.suffix in (".pyc", ".ipynb")
        or path.name.startswith("events.out.tfevents")
    )


def bundle(package: str, utid: str) -> Path:
    root = Path(package).resolve()
    if not (root / "__init__.py").is_file():
        sys.exit(f"error: {package} is not a package folder (no __init__.py)")
    output = Path(f"{utid}.zip").resolve()
    files = sorted(p for p in root.rglob("*") if p.is_file() and not skipped(p.relative_to(root)))
    tmp = output.with_suffix(".zip.partial")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for f in files:
            zf.write(f, Path(root.name) / f.relative_to(root))
            print(f"  {root.name}/{f.relative_to(root)}  {f.stat().st_size / 1024:.0f} KB")
    size_mb = tmp.stat().st_size / 2**20
    if size_mb > LIMIT_MB:
        tmp.unlink()
        sys.exit(f"error: the zip would be {size_mb:.1f} MB, over the {LIMIT_MB} MB limit: remove large files (checkpoints, logs)")
    tmp.replace(output)
    print(f"wrote {output} ({len(files)} files, {size_mb:.1f} MB)")
    if size_mb > WARN_MB:
        print(f"warning: {size_mb:.1f} MB is close to the {LIMIT_MB} MB limit")
    return output


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python bundle.py homework <id>")
    bundle(sys.argv[1], sys.argv[2])
