import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_gpu_check_runs_every_step_on_a_tiny_model_on_the_cpu(tmp_path):
    report_path = tmp_path / "report.json"
    # fp32 weights throughout (no int8 decode steps on an fp32 CPU), so the device and CPU runs can match token for token
    result = subprocess.run([sys.executable, "scripts/gpu_check.py", "--cpu", "--tiny", "--output", str(report_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=1200, env={**os.environ, "HOMEWORK_QUANT": "none"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(report_path.read_text())
    assert list(report["steps"]) == ["tests", "bench_quick", "greedy_device_vs_cpu", "sft", "grader_enforced"]
    assert all(step["ok"] for step in report["steps"].values()), report
    assert report["steps"]["tests"]["passed"] > 0 and not report["steps"]["tests"].get("failed")
    greedy = report["steps"]["greedy_device_vs_cpu"]
    assert greedy["questions"] == 8 and greedy["identical_completions"] <= greedy["identical_answers"]
    # the "device" is this CPU in fp32 too: greedy decoding is the same, unless the policy's int8 decode steps ran there
    if greedy["dtype"] == "torch.float32" and not greedy["int8"]:
        assert greedy["identical_completions"] == 8, greedy
    assert report["steps"]["grader_enforced"]["report"][0].startswith("timeouts: enforced")
