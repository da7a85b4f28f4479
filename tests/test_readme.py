"""The docs stay true: README's commands are CI's, and every module.name, path and command flag that README, docs/ or
a comment or docstring of the code names exists."""
import ast
import importlib
import inspect
import io
import re
import tokenize
from pathlib import Path

import pytest

from homework import settings

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CODE = [path for folder in ("homework", "grader", "scripts", "tests") for path in sorted((ROOT / folder).rglob("*.py"))]
# The package's modules and classes by the names the docs use: "loader.policy", "BaseLLM.engine", "engine.quant"
MODULES = {path.stem: ".".join(path.relative_to(ROOT).with_suffix("").parts)
           for path in (ROOT / "homework").rglob("*.py") if path.stem not in ("__init__", "__main__")}
MODULES |= {"engine": "homework.engine", "units": "homework.units", "recipes": "homework.recipes"}
CLASSES = {"BaseLLM": "homework.base_llm", "CoTModel": "homework.cot", "SFTModel": "homework.sft",
           "RFTModel": "homework.rft", "Engine": "homework.engine.batching", "Dataset": "homework.data",
           "FewShot": "homework.units.fewshot"}
FILE_SUFFIXES = {"py", "md", "json", "png", "txt", "zip", "gguf", "safetensors", "log"}


def prose(path: Path) -> str:
    """A doc's text, or a Python file's comments and strings (its code is checked by running it); of a test, its
    comments and docstring only (its other strings are made-up inputs)."""
    if path.suffix != ".py":
        return path.read_text()
    if path.parent.name == "tests":
        return "\n".join([ast.get_docstring(ast.parse(path.read_text())) or ""] + [
            t.string for t in tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
            if t.type == tokenize.COMMENT])
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
    return "\n".join(t.string for t in tokens if t.type in (tokenize.COMMENT, tokenize.STRING))


TEXTS = {path.relative_to(ROOT).as_posix(): prose(path) for path in DOCS + CODE}


def test_ci_runs_the_readme_commands():
    readme = (ROOT / "README.md").read_text()
    ci_lines = [line for line in (ROOT / ".ci/run").read_text().splitlines() if line and not line.startswith(("#", "set ", "cd ", "export "))]
    assert len(ci_lines) == 2
    for line in ci_lines:
        assert f"\n{line}\n" in readme, f"README lacks the CI command: {line}"


def test_every_homework_variable_is_listed_once_and_in_the_readme():
    # settings.ENVIRONMENT is the one list; the table in docs/RUNNING.md gives the same names
    named = {m for folder in ("homework", "grader", "scripts") for path in (ROOT / folder).rglob("*.py")
             for m in re.findall(r"\bHOMEWORK_[A-Z]+\b", path.read_text())}
    assert named <= set(settings.ENVIRONMENT), named - set(settings.ENVIRONMENT)
    table = {m for m in re.findall(r"^\| `(HOMEWORK_[A-Z]+)` \|", (ROOT / "docs/RUNNING.md").read_text(), re.M)}
    assert table == set(settings.ENVIRONMENT)


def aliases(where: str) -> dict[str, str]:
    """A Python file's own names for the package's modules: `from . import table as units` makes units mean table."""
    if not where.endswith(".py"):
        return {}
    return {alias.asname: alias.name.split(".")[-1] for node in ast.walk(ast.parse((ROOT / where).read_text()))
            if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in node.names
            if alias.asname and alias.name.split(".")[-1] in MODULES}


def resolves(owner: str, name: str) -> bool:
    target = importlib.import_module(MODULES.get(owner) or CLASSES[owner])
    if owner in CLASSES:
        target = getattr(target, owner)
    if hasattr(target, name):
        return True
    try:  # a submodule: engine.quant, units.generator
        importlib.import_module(f"{target.__name__}.{name}")
        return True
    except (ImportError, AttributeError):
        return False


def test_every_module_name_the_docs_and_comments_name_exists():
    owners = "|".join(sorted(MODULES.keys() | CLASSES.keys(), key=len, reverse=True))
    pattern = re.compile(rf"(?<![\w./-])({owners})\.([A-Za-z_]\w*)")
    missing = sorted({f"{where}: {owner}.{name}" for where, text in TEXTS.items() for own in [aliases(where)]
                      for owner, name in pattern.findall(text)
                      if name not in FILE_SUFFIXES and not resolves(own.get(owner, owner), name)})
    assert not missing, "\n".join(missing)


def test_every_path_the_docs_and_comments_name_exists():
    # paths in the repository; data/<split>.json, OUTPUT/... and the like are patterns, not files
    pattern = re.compile(r"(?<![\w./~<-])((?:homework|grader|scripts|tests|docs|data|\.ci)/[\w./*-]*[\w/*])")
    missing = sorted({f"{where}: {path}" for where, text in TEXTS.items() for path in pattern.findall(text)
                      if not any(ROOT.glob(path.rstrip("/"))) and path.rstrip("/") not in GENERATED})
    assert not missing, "\n".join(missing)


# Files that the commands make (ignored by git, so a fresh clone lacks them until they run)
GENERATED = {"homework/grpo_model"}


def command_flags(module: str) -> dict[str, set[str]] | None:
    """{command: its flags} of `python -m <module>`: the functions its `cli(...)` call runs (read from the source, so
    nothing runs); None for a module that is not such a command."""
    path = ROOT / Path(*module.split("."))
    path = path / "__main__.py" if path.is_dir() else path.with_suffix(".py")
    if not path.is_file():
        return None
    tree = ast.parse(path.read_text())
    call = next((node for node in ast.walk(tree) if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "cli"),
                None)
    if call is None:
        return None
    commands = call.args[0]
    named = ({key.value: value.id for key, value in zip(commands.keys, commands.values)}
             if isinstance(commands, ast.Dict) else {"": commands.id})
    if path.name == "__main__.py":  # the package's __main__ runs a function it imports: `from .recipe import main`
        source = next(f"{module}.{node.module}" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                      and node.level and any(a.name in named.values() for a in node.names))
    else:
        source = module
    imported = importlib.import_module(source)
    return {command: set(inspect.signature(getattr(imported, function)).parameters) for command, function in named.items()}


@pytest.mark.parametrize("where", sorted(TEXTS))
def test_every_flag_of_a_command_the_docs_show_is_taken(where):
    wrong = []
    for line in TEXTS[where].splitlines():
        for match in re.finditer(r"python -m (homework[\w.]*)((?: [\w\"'<>.=/{},-]+)*)", line):
            module, rest = match.group(1), match.group(2).split()
            if (commands := command_flags(module)) is None:
                continue
            command = rest[0] if rest and rest[0] in commands else ""
            taken = commands.get(command, set().union(*commands.values()))
            for flag in re.findall(r"(?<!\S)--([a-z_]+)", " ".join(rest)):
                if flag not in taken and flag.removeprefix("no") not in taken and flag != "help":
                    wrong.append(f"python -m {module} {command}: --{flag}")
    assert not wrong, "\n".join(wrong)
