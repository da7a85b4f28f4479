"""The graded cases, scored as the course's online grader scores them.

Scoring: a case earns int(fraction * points + 0.5), where fraction runs linearly between two bounds.
The generation cases score the model's mean token loss on question + its own answer (1 at <= 6.2,
0 at >= 8.0); the accuracy cases score `benchmark(model, Dataset("valid"), 100)`.
"""
import contextlib
import io
import math
import time
import traceback

import torch

from homework.data import Dataset, benchmark

MAX_PARAMETERS = 380_000_000


def linear(value: float, low: float, high: float) -> float:
    """0 at `low`, 1 at `high`, linear between, clipped. Works for falling scales too (low > high)."""
    if math.isnan(value):
        return 0.0
    return min(1.0, max(0.0, (value - low) / (high - low)))


def case_points(fraction: float, points: int) -> int:
    return int(fraction * points + 0.5)


class CaseFailed(Exception):
    """A case that can't be scored, with the one-line reason shown to the student."""


def case(points: int, timeout: float, extra_credit: bool = False):
    def mark(method):
        method.case = {"points": points, "timeout": timeout, "extra_credit": extra_credit}
        return method

    return mark


def num_parameters(llm) -> int:
    return sum(p.numel() for p in llm.model.parameters())


def check_size(llm):
    n = num_parameters(llm)
    if n > MAX_PARAMETERS:
        raise CaseFailed(f"the model has {n / 1e6:.0f}M parameters, over the {MAX_PARAMETERS / 1e6:.0f}M limit")
    return llm


@torch.inference_mode()
def mean_loss(llm, questions: list[str], answers: list[str]) -> float:
    """Mean cross-entropy per token of question + answer under the model itself; padding is masked out."""
    batch = llm.tokenizer([q + a for q, a in zip(questions, answers)], padding=True, return_tensors="pt").to(llm.device)
    logits = llm.model(**batch).logits[:, :-1].float()
    targets, mask = batch["input_ids"][:, 1:], batch["attention_mask"]
    mask = (mask[:, 1:] * mask[:, :-1]).bool()  # a real token predicted from a real token
    ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
    return (torch.where(mask, ce, 0).sum() / mask.sum()).item()


class Grader:
    title = ""

    def __init__(self, module, verbose: int = 0, enforce_timeouts: bool = True):
        self.module, self.verbose, self.enforce_timeouts = module, verbose, enforce_timeouts
        self.valid = Dataset("valid")

    def cases(self):
        return [getattr(self, n) for n in dir(type(self)) if hasattr(getattr(type(self), n), "case")]

    def run(self) -> list[dict]:
        """One result per case, in the order the cases are written."""
        results = []
        for method in sorted(self.cases(), key=lambda m: m.__func__.__code__.co_firstlineno):
            earned, detail = self.run_case(method, method.case)
            results.append({"name": method.__doc__.strip(), "earned": earned, "detail": detail, **method.case})
        return results

    def run_case(self, method, spec) -> tuple[int, str]:
        start = time.perf_counter()
        try:
            with contextlib.ExitStack() as stack:
                if self.verbose < 2:  # the submission's output is ignored, as online
                    sink = io.StringIO()
                    stack.enter_context(contextlib.redirect_stdout(sink))
                    stack.enter_context(contextlib.redirect_stderr(sink))
                fraction, detail = method()
        except CaseFailed as e:
            return 0, str(e)
        except NotImplementedError:
            return 0, "Not Implemented"
        except SystemExit:
            return 0, "the submission called exit"
        except Exception as e:
            if self.verbose:
                traceback.print_exc()
            return 0, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        elapsed = time.perf_counter() - start
        if elapsed > spec["timeout"]:
            if self.enforce_timeouts:
                return 0, f"Timeout after {elapsed:.0f} s (limit {spec['timeout']} s)"
            detail += f"  took {elapsed:.0f} s, over the {spec['timeout']} s GPU limit (not enforced on this device)"
        else:
            detail += f"  ({elapsed:.0f} s)"
        return case_points(fraction, spec["points"]), detail


class GenerationGrader(Grader):
    title = "Base LLM generation"
    num_questions = 32

    def _score(self, generate_all) -> tuple[float, str]:
        if not hasattr(self, "_llm"):  # one load serves both cases
            self._llm = check_size(self.module.BaseLLM())
        llm = self._llm
        questions = [self.valid[i][0] for i in range(self.num_questions)]
        answers = generate_all(llm, questions)
        loss = mean_loss(llm, questions, answers)
        return linear(loss, 8.0, 6.2), f"loss={loss:.2f}"

    @case(points=10, timeout=40)
    def test_generate(self):
        """generate, one question at a time"""
        return self._score(lambda llm, qs: [llm.generate(q) for q in qs])

    @case(points=15, timeout=15)
    def test_batched_generate(self):
        """batched_generate"""
        return self._score(lambda llm, qs: llm.batched_generate(qs))


class AccuracyGrader(Grader):
    loader_name, low, high = "", 0.0, 1.0

    def accuracy(self) -> tuple[float, str]:
        llm = check_size(getattr(self.module, self.loader_name)())
        result = benchmark(llm, self.valid, 100)
        return result.accuracy, f"accuracy={result.accuracy:.2f} answer_rate={result.answer_rate:.2f}"

    @case(points=25, timeout=60)
    def test_accuracy(self):
        """accuracy on 100 valid questions"""
        self._result = self.accuracy()
        return linear(self._result[0], self.low, self.high), self._result[1]


class CoTGrader(AccuracyGrader):
    title, loader_name, low, high = "CoT model", "load_cot", 0.0, 0.4


class SFTGrader(AccuracyGrader):
    title, loader_name, low, high = "SFT model", "load_sft", 0.4, 0.6


class RFTGrader(AccuracyGrader):
    title, loader_name, low, high = "RFT model", "load_rft", 0.6, 0.7

    @case(points=5, timeout=60, extra_credit=True)
    def test_extra_credit(self):
        """accuracy beyond 0.7"""
        accuracy, detail = getattr(self, "_result", None) or self.accuracy()  # reuses test_accuracy's run
        return linear(accuracy, 0.7, 0.8), detail


GRADERS = [GenerationGrader, CoTGrader, SFTGrader, RFTGrader]
