import re
from pathlib import Path

from homework import settings

ROOT = Path(__file__).resolve().parent.parent


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
