"""Turning a path into a submission folder to grade, safely: any bad input becomes a SubmissionError with a one-line reason."""
import shutil
import zipfile
from pathlib import Path, PurePosixPath

REPO = Path(__file__).resolve().parent.parent
MAX_MEMBER_BYTES = 200 * 2**20  # an adapter is < 20 MB; nothing honest comes near this
MAX_TOTAL_BYTES = 400 * 2**20


class SubmissionError(Exception):
    pass


def prepare(path: Path, workdir: Path) -> tuple[Path, str]:
    """(folder to put on sys.path, package name): a copy of the folder `path`, or the one top-level folder
    of the zip `path`, in workdir, with a data/ folder beside it as in the course starter (the one beside
    `path` if there is one, else this repo's). Grading a copy keeps whatever the submission writes in a temp dir."""
    if path.is_dir():
        if not (path / "__init__.py").is_file():
            raise SubmissionError(f"{path} is not a Python package (no __init__.py)")
        path = path.resolve()
        shutil.copytree(path, workdir / path.name, ignore=shutil.ignore_patterns("__pycache__", "runs", "checkpoint-*"))
        package, data = workdir / path.name, path.parent / "data"
    else:
        package, data = unpack(path, workdir), REPO / "data"
    if not (workdir / "data").exists():
        shutil.copytree(data if data.is_dir() else REPO / "data", workdir / "data")
    return workdir, package.name


def unpack(path: Path, workdir: Path) -> Path:
    """The one top-level folder of the zip `path`, unpacked into workdir."""
    if not path.exists():
        raise SubmissionError(f"{path} does not exist")
    if not zipfile.is_zipfile(path):
        raise SubmissionError(f"{path} is neither a folder nor a zip file")
    with zipfile.ZipFile(path) as zf:
        members = [m for m in zf.infolist() if not m.filename.startswith("__MACOSX/")]
        if not members:
            raise SubmissionError("the zip is empty")
        for m in members:
            parts = PurePosixPath(m.filename.replace("\\", "/")).parts
            if m.filename.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                raise SubmissionError(f"unsafe path in the zip: {m.filename!r}")
            if m.file_size > MAX_MEMBER_BYTES:
                raise SubmissionError(f"{m.filename} would unpack to {m.file_size / 2**20:.0f} MB (limit {MAX_MEMBER_BYTES / 2**20:.0f} MB)")
        tops = sorted({PurePosixPath(m.filename).parts[0] for m in members})
        if len(tops) != 1 or all(m.filename == tops[0] for m in members):
            raise SubmissionError(f"the zip must hold exactly one top-level folder, found: {', '.join(tops)}")
        total = 0
        for m in members:
            target = workdir / m.filename
            if m.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(m) as src, open(target, "wb") as dst:
                # Declared sizes can lie: count what really comes out.
                while chunk := src.read(2**20):
                    total += len(chunk)
                    if total > MAX_TOTAL_BYTES:
                        raise SubmissionError(f"the zip unpacks to more than {MAX_TOTAL_BYTES / 2**20:.0f} MB")
                    dst.write(chunk)
    package = workdir / tops[0]
    if not (package / "__init__.py").is_file():
        raise SubmissionError(f"the zip's folder {tops[0]!r} is not a Python package (no __init__.py)")
    return package
