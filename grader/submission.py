"""Turning a path into a submission folder to grade, safely: any bad input becomes a SubmissionError with a one-line reason."""
import json
import shutil
import stat
import sys
import zipfile
import zlib
from pathlib import Path, PurePosixPath

REPO = Path(__file__).resolve().parent.parent
MAX_MEMBER_BYTES = 200 * 2**20  # an adapter is < 20 MB; nothing honest comes near this
MAX_TOTAL_BYTES = 400 * 2**20
# The course's upload limit, 50 MB in the course's unit (10^6 bytes): bundle.py and the grader both size by it
LIMIT_MB = 50
LIMIT_BYTES = LIMIT_MB * 10**6
READABLE = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}  # what zipfile can unpack


# Names a submission's folder can't take: the data folder beside it, and the grader's own modules
GRADERS_NAMES = {"data", "grader", *(p.stem for p in Path(__file__).parent.glob("*.py"))}


# The base model the course's machine loads, and the command that trains adapters on it
COURSE_MODEL = "HuggingFaceTB/SmolLM2-360M-Instruct"
COURSE_ADAPTERS = f"python -m homework.recipes --checkpoint {COURSE_MODEL} --output_dir runs/360m --ship (a GPU)"


def course_problems(package: Path) -> list[str]:
    """One line for each thing the course's grader would fail on that ours would not: a folder not named homework,
    and adapters trained on another base model than the course's (their shapes don't fit it)."""
    problems = []
    if package.name != "homework":
        problems.append(f"the folder is named {package.name!r}: the course imports homework")
    others = {}
    for config in sorted(package.glob("*/adapter_config.json")):
        try:
            base = json.loads(config.read_text()).get("base_model_name_or_path")
        except (OSError, ValueError, AttributeError):
            base = "an unreadable adapter_config.json"
        if base != COURSE_MODEL:
            others[config.parent.name] = base
    if others:
        adapters = ", ".join(f"{name} ({base})" for name, base in others.items())
        problems.append(f"adapters trained on another base model than the course's {COURSE_MODEL}: {adapters}; they "
                        f"would fail online. The course's: {COURSE_ADAPTERS}")
    return problems


class SubmissionError(Exception):
    pass


def prepare(path: Path, workdir: Path) -> tuple[Path, str]:
    """(folder to put on sys.path, package name): a copy of the folder `path`, or the one top-level folder
    of the zip `path`, in workdir, with a copy of this repo's data/ beside it as in the course starter (never the
    submission's own: the answers are the grader's). Grading a copy keeps whatever the submission writes in a temp
    dir."""
    if path.is_dir():
        if not (path / "__init__.py").is_file():
            raise SubmissionError(f"{path} is not a Python package (no __init__.py)")
        path = path.resolve()
        # links are copied as links: a folder that links to itself is not walked forever
        shutil.copytree(path, workdir / path.name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "runs", "checkpoint-*"))
        package = workdir / path.name
    else:
        package = unpack(path, workdir)
    if package.name in sys.stdlib_module_names:  # `import json` would give the standard library's, not the submission
        raise SubmissionError(f"the package is named {package.name!r}, as a standard library module: rename its folder")
    if package.name in GRADERS_NAMES:
        raise SubmissionError(f"the package is named {package.name!r}, as the grader's data or one of its modules: "
                              "the course imports homework")
    shutil.copytree(REPO / "data", workdir / "data")
    return workdir, package.name


def unpack(path: Path, workdir: Path) -> Path:
    """The one top-level folder of the zip `path`, unpacked into workdir."""
    if not path.exists():
        raise SubmissionError(f"{path} does not exist")
    if not zipfile.is_zipfile(path):
        raise SubmissionError(f"{path} is neither a folder nor a zip file")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise SubmissionError(f"{path} can't be read as a zip: {e}") from None
    with zf:
        members = [m for m in zf.infolist() if not m.filename.startswith("__MACOSX/")]
        if not members:
            raise SubmissionError("the zip is empty")
        for m in members:
            parts = PurePosixPath(m.filename.replace("\\", "/")).parts
            if m.filename.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                raise SubmissionError(f"unsafe path in the zip: {m.filename!r}")
            if m.file_size > MAX_MEMBER_BYTES:
                raise SubmissionError(f"{m.filename} would unpack to {m.file_size / 2**20:.0f} MB (limit {MAX_MEMBER_BYTES / 2**20:.0f} MB)")
            if m.flag_bits & 0x1:
                raise SubmissionError(f"{m.filename} is encrypted in the zip")
            if m.compress_type not in READABLE:
                raise SubmissionError(f"{m.filename} is compressed by method {m.compress_type} (deflate64 is 9), which Python's zipfile can't unpack")
            if stat.S_ISLNK(m.external_attr >> 16):
                raise SubmissionError(f"{m.filename} is a symbolic link in the zip")
        files = {m.filename for m in members if not m.is_dir()}
        for m in members:
            if clash := next((str(p) for p in PurePosixPath(m.filename).parents if str(p) in files), None):
                raise SubmissionError(f"{clash} is both a file and a folder in the zip")
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
            try:
                with zf.open(m) as src, open(target, "wb") as dst:
                    # Declared sizes can lie: count what really comes out.
                    while chunk := src.read(2**20):
                        total += len(chunk)
                        if total > MAX_TOTAL_BYTES:
                            raise SubmissionError(f"the zip unpacks to more than {MAX_TOTAL_BYTES / 2**20:.0f} MB")
                        dst.write(chunk)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as e:  # bad CRC, sizes, data
                raise SubmissionError(f"the zip is corrupt at {m.filename}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    package = workdir / tops[0]
    if not (package / "__init__.py").is_file():
        raise SubmissionError(f"the zip's folder {tops[0]!r} is not a Python package (no __init__.py)")
    return package
