"""The package drops into the course starter: its grader imports the folder by path, under the folder's
name, and reaches everything through the module object."""
import importlib
import math
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NAMES = ["BaseLLM", "Dataset", "load_cot", "load_sft", "load_rft"]
SUBMODULES = ["data", "base_llm", "cot", "sft", "rft", "datagen"]


def import_as_the_course_does(folder: Path):
    """The folder's parent on sys.path, then importlib.import_module(folder name)."""
    sys.path.insert(0, str(folder.parent))
    try:
        return importlib.import_module(folder.name)
    finally:
        sys.path.remove(str(folder.parent))


@pytest.fixture
def renamed(tmp_path, monkeypatch):
    """A copy of the package under another name (no adapters), with the repo's data through HOMEWORK_DATA."""
    folder = tmp_path / "student_hw3"
    shutil.copytree(ROOT / "homework", folder, ignore=shutil.ignore_patterns("*_model", "__pycache__"))
    monkeypatch.setenv("HOMEWORK_DATA", str(ROOT / "data"))
    yield import_as_the_course_does(folder)
    for name in [n for n in sys.modules if n == folder.name or n.startswith(folder.name + ".")]:
        del sys.modules[name]


def test_the_repo_package_has_the_course_surface():
    module = import_as_the_course_does(ROOT / "homework")
    for name in NAMES:
        assert callable(getattr(module, name)), name
    for name in SUBMODULES:
        assert isinstance(getattr(module, name), types.ModuleType) and getattr(module, name).__name__ == f"homework.{name}"
    assert set(NAMES + SUBMODULES) <= set(dir(module))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        module.nope


def test_a_renamed_copy_grades_through_its_own_modules(renamed, tiny_model, tokenizer):
    assert renamed.data.__name__ == "student_hw3.data" and renamed.cot.__name__ == "student_hw3.cot"
    assert renamed.Dataset is renamed.data.Dataset
    dataset = renamed.data.Dataset("valid")
    assert len(dataset) == 1000
    llm = renamed.BaseLLM(model=tiny_model, tokenizer=tokenizer)
    assert type(llm).__module__ == "student_hw3.base_llm"
    llm.max_new_tokens = 4
    result = renamed.data.benchmark(llm, dataset, 3)
    assert len(result.samples) == 3 and [s.question for s in result.samples] == [q for q, _ in dataset.data[:3]]
    assert result.accuracy == sum(s.is_correct for s in result.samples) / 3
    assert result.answer_rate == sum(not math.isnan(s.answer) for s in result.samples) / 3


def test_python_dash_m_runs_a_module_once():
    # the runpy warning appears when the package has imported the module before running it as __main__
    result = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m", "homework.data"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0 and "RuntimeWarning" not in result.stderr, result.stderr


# The layers of the package, lowest first: a module imports only its own layer or those below it
LAYERS = [["settings"], ["data"], ["units"], ["engine"], ["loader"], ["cli"], ["adapters", "evaluation", "sampling", "training"], ["base_llm"],
          ["cot", "sft"], ["datagen", "rft"], ["recipes"]]


def package_imports() -> dict[str, set[str]]:
    """{module: the package's modules it imports}, module-level and inside functions, as dotted names under homework.
    A module's command line (its `if __name__ == "__main__":` block) is left out: nothing imports it, and it may use
    cli.py from any layer."""
    import ast

    def main_block(node) -> bool:
        return isinstance(node, ast.If) and ast.unparse(node.test) in ("__name__ == '__main__'", "'__main__' == __name__")

    graph = {}
    for path in sorted((ROOT / "homework").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        package = parts[:-1]
        graph[name] = set()
        tree = ast.parse(path.read_text())
        tree.body = [node for node in tree.body if not main_block(node)]
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ((node.module,) if node.module else ()))
                named = [f"{target}.{a.name}" for a in node.names]
                graph[name] |= {t for t in named if (ROOT / Path(*t.split("."))).with_suffix(".py").exists()
                                or (ROOT / Path(*t.split("."))).is_dir()} or {target}
    return graph


def layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    return next(i for i, names in enumerate(LAYERS) if top in names)


def test_no_module_imports_upward_or_in_a_circle():
    graph = {m: deps for m, deps in package_imports().items() if m != "homework"}
    upward = [(m, d) for m, deps in graph.items() for d in deps if d != "homework" and layer(d) > layer(m)]
    assert not upward, upward
    done, path = set(), []

    def visit(module):
        assert module not in path, " -> ".join(path[path.index(module):] + [module])  # a circle
        if module in done:
            return
        path.append(module)
        for dep in graph.get(module, ()):
            visit(dep)
        path.pop()
        done.add(module)

    for module in graph:
        visit(module)


def test_the_homework_reaches_the_engine_at_one_seam():
    """Only base_llm (generation) and loader (quantizing, threads) import the engine, and only its package's names."""
    graph = package_imports()
    users = {m: {d for d in deps if d.startswith("homework.engine")} for m, deps in graph.items()
             if not m.startswith(("homework.engine", "homework.recipes"))}
    assert {m: deps for m, deps in users.items() if deps} == {"homework.base_llm": {"homework.engine"},
                                                             "homework.loader": {"homework.engine"}}
