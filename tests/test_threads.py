import os
import subprocess
import sys
import time

import pytest
import torch

from homework import settings
from homework.engine import threads
from homework.base_llm import BaseLLM


@pytest.fixture(autouse=True)
def adaptive(monkeypatch):
    """The fitting on, as outside the suite (conftest turns it off for every other test)."""
    monkeypatch.delenv(settings.THREADS)


@pytest.fixture
def two_threads():
    """torch at 2 threads for the test, then as it was."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def fitter_seeing(loads: list[int | None], window: int = 3) -> threads.Fitter:
    """A Fitter on 2 cores at 2 threads that samples `loads` in turn, on every call (the first fills its window)."""
    fitter = threads.Fitter(interval=0, window=window, sample=iter(loads).__next__, first_interval=0)
    fitter.most, fitter.cores, fitter.elsewhere = 2, 2, 0
    return fitter


def counts(fitter: threads.Fitter, calls: int) -> list[int]:
    seen = []
    for _ in range(calls):
        fitter.fit()
        seen.append(torch.get_num_threads())
    return seen


# (the other tasks' runnable counts as sampled, the thread count after each call: the first call takes 3 samples,
# each later one 1; a window of 3 on 2 cores)
CASES = [
    ([1, 1, 1, 1], [1, 1], "busy through the window: one core left"),
    ([2, 2, 2], [1], "more busy tasks than cores: still one thread"),
    ([1, 1, 1, 0, 1], [1, 2, 2], "one idle sample: every core again at once"),
    ([0, 0, 1, 0, 0], [2, 2, 2], "a task seen once is not a busy process"),
    ([1, 1, 1, 1, 0, 0, 0], [1, 1, 2, 2, 2], "the other process stopped"),
]


@pytest.mark.parametrize("loads, expected, why", CASES, ids=[c[2] for c in CASES])
def test_the_thread_count_follows_the_cores_that_other_tasks_leave(two_threads, loads, expected, why):
    assert counts(fitter_seeing(loads), len(expected)) == expected, why


def test_tasks_count_against_our_cores_only_once_the_cpus_we_may_not_use_are_full(two_threads):
    fitter = fitter_seeing([62] * 3 + [63], window=3)  # 2 of a 64-CPU host's cores are ours (a container's cpuset)
    fitter.elsewhere = 62
    assert counts(fitter, 2) == [2, 2]
    fitter.history.clear()
    fitter.sample = iter([63, 63, 63]).__next__
    assert counts(fitter, 1) == [1]


def test_a_fitted_block_gives_torch_its_own_count_back_when_the_outermost_ends(two_threads, monkeypatch):
    monkeypatch.setattr(threads, "_fitter", fitter_seeing([1] * 10))
    with threads.fitted():
        assert torch.get_num_threads() == 1
        with threads.fitted():
            pass
        assert torch.get_num_threads() == 1  # the inner block left the outer one's count
    assert torch.get_num_threads() == 2


def test_fixed_leaves_the_count_alone(two_threads, monkeypatch):
    monkeypatch.setenv(settings.THREADS, "fixed")
    assert counts(fitter_seeing([1] * 5), 5) == [2] * 5


def test_a_bad_value_is_refused(monkeypatch):
    monkeypatch.setenv(settings.THREADS, "4")
    with pytest.raises(settings.UsageError, match="HOMEWORK_THREADS='4': use adaptive or fixed"):
        threads.Fitter()


def test_without_proc_the_count_stays(two_threads):
    fitter = fitter_seeing([None, 1, 1, 1, 1])
    assert counts(fitter, 4) == [2] * 4
    assert not fitter.enabled


@pytest.mark.skipif(not os.path.exists("/proc/loadavg"), reason="reads Linux's /proc")
def test_a_busy_process_counts():
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        assert min(threads.runnable_elsewhere() for _ in range(5)) >= 1
    finally:
        busy.kill()
        busy.wait()


def test_generation_runs_at_the_fitted_count_and_gives_it_back(tiny_model, tokenizer, two_threads, monkeypatch):
    fitter = threads.Fitter(interval=0, window=1, sample=lambda: 1, first_interval=0)
    fitter.most, fitter.cores, fitter.elsewhere = 2, 2, 0
    monkeypatch.setattr(threads, "_fitter", fitter)
    seen = []
    tiny_model.register_forward_hook(lambda *_: seen.append(torch.get_num_threads()))
    llm = BaseLLM(model=tiny_model, tokenizer=tokenizer)
    llm.max_new_tokens = 4
    llm.batched_generate(["How many gram are there per 6 kg?", "2 m in cm?"])
    assert seen and set(seen) == {1}  # the prompts share no prefix, so every forward runs after a fit
    assert torch.get_num_threads() == 2
