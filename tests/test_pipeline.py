import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = [ROOT / "data" / "rft.json", *(ROOT / "homework").glob("*_model/adapter_model.safetensors")]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_pipeline_quick_runs_every_stage_and_leaves_the_shipped_files_alone(tmp_path):
    before = {p: digest(p) for p in SHIPPED}
    result = subprocess.run([sys.executable, "-m", "homework.pipeline", "--quick", "--output_dir", str(tmp_path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=900, env={**os.environ, "HOMEWORK_CHECKPOINT": "embedded"})
    assert result.returncode == 0, result.stderr[-3000:]
    summary = result.stdout.split("pipeline --quick in")[-1]
    for stage in ["datagen", "rft train", "sft train", "test", "grade"]:
        assert re.search(rf"^{stage} .*\(\d+ s\)$", summary, re.M), summary
    assert re.search(r"^grade +Total +\d+ / 100", summary, re.M), summary
    assert (tmp_path / "package" / "homework" / "sft_model" / "adapter_config.json").is_file()
    assert {p: digest(p) for p in SHIPPED} == before
