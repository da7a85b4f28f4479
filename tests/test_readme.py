from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_commands():
    readme = (ROOT / "README.md").read_text()
    ci_lines = [line for line in (ROOT / ".ci/run").read_text().splitlines() if line and not line.startswith(("#", "set ", "cd ", "export "))]
    assert len(ci_lines) == 2
    for line in ci_lines:
        assert f"\n{line}\n" in readme, f"README lacks the CI command: {line}"
