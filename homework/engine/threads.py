"""torch's thread count fitted to the machine's load while a model loads and generates (`HOMEWORK_THREADS=fixed`
leaves it alone).

torch's OpenMP threads spin at the end of every parallel op until all of them are done. Beside another busy process,
one of them waits for a core, and its partner spins through that wait: a decode step of the 135M model on 2 AVX2
cores took 92 ms at one row and 290 ms at 8 rows with 2 threads beside one busy process, 51 and 119 ms with 1 thread
(alone: 26 / 75 ms with 2, 43 / 111 ms with 1; docs/PERFORMANCE.md). So while other tasks keep cores busy, a model's
load and generation run as many threads as there are cores left, at least one; when they stop, torch's own count.
The count changes the order of some float sums, so a greedy answer may differ by a token from the one a quiet
machine gives.

The load is the machine's runnable tasks (`/proc/loadavg`, Linux) less this process's own, sampled at most every
`interval` seconds. A process counts as busy only if it was seen in each of the last `window` samples, so that a
short-lived task (a poller, a shell command) doesn't halve a case's threads.
"""

import contextlib
import os
import time
from collections import deque
from pathlib import Path

import torch

from ..settings import THREADS, read

LOADAVG, OWN_TASKS = Path("/proc/loadavg"), Path("/proc/self/task")


def runnable_elsewhere() -> int | None:
    """Tasks running or waiting for a CPU outside this process, or None where /proc can't tell."""

    def own() -> int:
        running = 0
        for task in os.listdir(OWN_TASKS):
            try:  # "pid (name) S ...": the state follows the last ')'
                running += (OWN_TASKS / task / "stat").read_text().rpartition(")")[2].split()[0] == "R"
            except (OSError, IndexError):
                pass  # the thread has ended
        return running

    try:
        before = own()
        machine = int(LOADAVG.read_text().split()[3].split("/")[0])
        # a thread of ours that stopped between the reads is counted as ours: better one thread too many than too few
        return max(0, machine - max(before, own()))
    except (OSError, ValueError, IndexError):
        return None


class Fitter:
    """Call `fit()` between model calls; it samples the load now and then and sets torch's thread count to match."""

    def __init__(
        self, interval: float = 0.25, window: int = 4, sample=runnable_elsewhere, first_interval: float = 0.05
    ):
        self.interval, self.sample, self.first_interval = interval, sample, first_interval
        self.depth = 0  # `fitted` blocks open
        self.history = deque(maxlen=window)
        self.last = -float("inf")
        self.most = torch.get_num_threads()  # torch's own count (OMP_NUM_THREADS or the cores): never more
        self.cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        # /proc/loadavg counts the whole machine (the host's, in a container): tasks fill the CPUs we may not use first
        self.elsewhere = max(0, (os.cpu_count() or self.cores) - self.cores)
        self.enabled = (read(THREADS, ("adaptive", "fixed")) or "adaptive") == "adaptive"  # or a UsageError

    def fit(self):
        if not self.enabled:
            return
        if time.monotonic() - self.last >= self.interval:
            self.look()
            while self.enabled and len(self.history) < self.history.maxlen:  # the first call fills the window at
                time.sleep(self.first_interval)  # once: a model's load is fitted from its start
                self.look()
        threads = self.threads()
        if self.enabled and threads != torch.get_num_threads():
            torch.set_num_threads(threads)

    def look(self):
        self.last, busy = time.monotonic(), self.sample()
        if busy is None:  # no /proc: torch's own count, always
            self.enabled = False
        else:
            self.history.append(busy)

    def threads(self) -> int:
        """Torch's count less the cores that other tasks have kept busy through the whole window."""
        busy = max(0, min(self.history, default=0) - self.elsewhere)
        return max(1, min(self.most, self.cores - busy))

    def restore(self):
        """torch's own count again, as the caller had it (the load seen so far stays for the next call)."""
        if torch.get_num_threads() != self.most:
            torch.set_num_threads(self.most)


_fitter: Fitter | None = None


@contextlib.contextmanager
def fitted():
    """A block (a model's load, a generate call) at the fitted count, then torch's own count again; blocks nest."""
    fitter = get_fitter()
    fitter.depth += 1
    try:
        fitter.fit()
        yield fitter
    finally:
        fitter.depth -= 1
        if fitter.depth == 0:
            fitter.restore()


def fit():
    """Between a fitted block's model calls: the count fitted to the load now (`Fitter.fit`)."""
    get_fitter().fit()


def get_fitter() -> Fitter:
    """The process's one Fitter: its samples carry over from one generate call to the next."""
    global _fitter
    if _fitter is None:
        _fitter = Fitter()
    return _fitter
