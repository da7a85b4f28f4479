"""datagen across processes: each rank samples its share of the questions, rank 0 merges them in question order."""
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from homework import sampling
from homework.data import write_json
from tests.datagen_ranks import Oracle, run

SCRIPT = os.path.join(os.path.dirname(__file__), "datagen_ranks.py")


def as_rank(monkeypatch, rank: int, world: int):
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("WORLD_SIZE", str(world))


def test_two_ranks_write_what_one_process_writes_and_a_killed_rank_resumes(tmp_path, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    alone = run(str(tmp_path / "one.json"), 30, Oracle())
    rows = json.loads((tmp_path / "one.json").read_text())
    assert 0 < len(rows) < 30  # some questions kept, some not

    out = tmp_path / "two.json"
    as_rank(monkeypatch, 1, 2)
    with pytest.raises(KeyboardInterrupt):
        run(str(out), 30, Oracle(crash_after=1))
    saved = json.loads((tmp_path / "two.json.partial.1of2").read_text())
    assert len(saved) == 4  # its first chunk, kept
    resumed = run(str(out), 30, Oracle())
    assert not out.exists()  # only rank 0 writes the output
    first_shard = [q for chunk in alone.seen for q in chunk][1::2]
    assert [q for chunk in resumed.seen for q in chunk] == [q for q in first_shard if q not in saved]  # what was left

    as_rank(monkeypatch, 0, 2)
    zero = run(str(out), 30, Oracle())
    assert [q for chunk in zero.seen for q in chunk] == [q for chunk in alone.seen for q in chunk][0::2]
    assert json.loads(out.read_text()) == rows  # the same rows, in question order
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.json", "two.json"]  # no progress file left


def test_rank_zero_waits_for_the_others(tmp_path):
    questions = [("a?", 1.0), ("b?", 2.0), ("c?", 3.0)]
    out = tmp_path / "rft.json"
    write_json(sampling.shard_progress(out, 0, 2), {"a?": [1.0, "ra", 1], "c?": [3.0, None, 0]})
    # another run's progress for rank 1, without this run's question: not taken for done
    write_json(sampling.shard_progress(out, 1, 2), {"z?": [9.0, "rz", 1]})

    def rank_one_finishes():
        time.sleep(0.3)
        write_json(sampling.shard_progress(out, 1, 2), {"b?": [2.0, "rb", 2]})

    thread = threading.Thread(target=rank_one_finishes)
    thread.start()
    merged = sampling.gather(out, questions, 2, poll=0.01)
    thread.join()
    # rank 1's question is there: gather waited for it
    assert list(merged.items()) == [("a?", [1.0, "ra", 1]), ("b?", [2.0, "rb", 2]), ("c?", [3.0, None, 0])]


@pytest.mark.slow
def test_torchrun_two_processes_match_one_and_resume_a_killed_rank(tmp_path):
    def launch(output, processes, **env):
        command = [sys.executable, SCRIPT, str(output), "30"]
        if processes > 1:
            command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), *command[1:]]
        return subprocess.run(command, capture_output=True, text=True, timeout=600,
                              env={**os.environ, "OMP_NUM_THREADS": "1", **env})

    one = launch(tmp_path / "one.json", 1)
    assert one.returncode == 0, one.stderr[-3000:]
    killed = launch(tmp_path / "two.json", 2, CRASH_RANK="1")
    assert killed.returncode != 0 and not (tmp_path / "two.json").exists()
    assert len(json.loads((tmp_path / "two.json.partial.1of2").read_text())) == 4  # rank 1's first chunk survived
    resumed = launch(tmp_path / "two.json", 2)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((tmp_path / "two.json").read_text()) == json.loads((tmp_path / "one.json").read_text())
    assert not list(tmp_path.glob("*.partial*"))
