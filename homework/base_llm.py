"""The base model: prompt -> generation -> parsed answer.

    python -m homework.base_llm test      # completes two short prompts, one at a time and batched

`batched_generate` is the homework's: the prompts tokenized with left padding, `model.generate`, the new tokens
decoded, then grouped by prompt for `num_return_sequences`. `BaseLLM` runs the same decoding on our
continuous-batching engine (homework/engine) by default, which is faster on a CPU; `HOMEWORK_ENGINE=off` (read at
each call) or `BaseLLM.engine = False` runs the homework's path. Under greedy decoding in fp32 both write the same
tokens.
"""
import math
import re

import torch
from tqdm import tqdm

from . import loader
from .cli import cli
from .engine import Engine, enabled, micro_batch_size
from .units.numbers import NUMBER

STRICT = re.compile(rf"<answer>\s*([-+]?{NUMBER})\s*</answer>")  # the tag holds a number and nothing else
LENIENT = re.compile(rf"<answer>[^\d<]*?([-+]?{NUMBER})")  # the first number after the tag: units, no closing tag


def parse_answer(text: str) -> float:
    """The number in `<answer>...</answer>`, or NaN. Never raises."""
    for pattern in (STRICT, LENIENT):
        if match := pattern.search(text or ""):
            try:
                return float(match.group(1).replace(",", ""))
            except ValueError:
                pass
    return math.nan


class BaseLLM:
    max_new_tokens = 64
    stop_strings = ["</answer>"]  # a row that has closed its answer is done
    batch_size: int | None = None  # prompts generated for at once, on either path; None: `prompts_at_once` sizes it
    engine: bool | None = None  # False: the homework's model.generate path; None: HOMEWORK_ENGINE says, at each call

    def __init__(self, checkpoint: str = loader.DEFAULT_CHECKPOINT, model=None, tokenizer=None, dtype=None,
                 calculator: bool = False, quantize: bool | None = None):
        """calculator: after a row writes `a * b =`, the engine writes the result (engine/calculator.py); off, the
        model computes everything itself, as the course grades it. quantize: int8 weights where the device policy asks
        for them (None: for an inference load, one that names no dtype)."""
        self.calculator = calculator
        if model is None:
            model, tokenizer = loader.load(checkpoint, dtype, quantize)
        else:
            model, tokenizer = loader.prepare(model, tokenizer)
        self.model, self.tokenizer, self.device = model, tokenizer, model.device

    def format_prompt(self, question: str) -> str:
        return question

    def parse_answer(self, text: str) -> float:
        return parse_answer(text)

    def generate(self, prompt: str) -> str:
        return self.batched_generate([prompt])[0]

    def batched_generate(self, prompts: list[str], num_return_sequences: int | None = None,
                         temperature: float = 0) -> list[str] | list[list[str]]:
        """A completion per prompt, or a list of `num_return_sequences` per prompt if that is set. temperature=0 is
        greedy decoding, anything above it samples."""
        if self.uses_engine() or self.calculator:
            return self.engine_generate(prompts, num_return_sequences, temperature)
        if len(prompts) > (size := self.prompts_at_once(num_return_sequences or 1)):
            return [text for i in tqdm(range(0, len(prompts), size), desc="generate", leave=False)
                    for text in self.batched_generate(prompts[i : i + size], num_return_sequences, temperature)]
        n = num_return_sequences or 1
        if temperature > 0:
            sampling = {"do_sample": True, "temperature": temperature, "num_return_sequences": n}
        else:  # greedy: n copies of the one completion (generate samples n only when sampling)
            sampling, prompts = {"do_sample": False}, [p for p in prompts for _ in range(n)]
        self.tokenizer.padding_side = "left"
        inputs = self.tokenizer(prompts, padding=True, return_tensors="pt").to(self.device)
        with torch.inference_mode():
            outputs = self.model.generate(
                input_ids=inputs["input_ids"],
                attention_mask=inputs["attention_mask"],
                max_new_tokens=self.max_new_tokens,
                stop_strings=self.stop_strings or None,
                tokenizer=self.tokenizer,
                pad_token_id=self.tokenizer.pad_token_id,
                **sampling,
            )
        texts = self.tokenizer.batch_decode(outputs[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        if num_return_sequences is None:
            return texts
        return [texts[i : i + n] for i in range(0, len(texts), n)]

    def uses_engine(self) -> bool:
        return self.engine if self.engine is not None else enabled()

    def prompts_at_once(self, n: int = 1, length: int = 512) -> int:
        """batch_size, else as many prompts of `length` tokens, `n` samples each, as the device runs well at once: 64
        rows on a CPU, what half the free memory holds on a GPU (engine.micro_batch_size)."""
        return self.batch_size or micro_batch_size(self.model, length, n)

    def engine_generate(self, prompts: list[str], num_return_sequences: int | None = None,
                        temperature: float = 0) -> list[str] | list[list[str]]:
        """`batched_generate` on the continuous-batching engine."""
        groups = self.generate_ids(self.tokenizer(prompts)["input_ids"], num_return_sequences or 1, temperature)
        texts = iter(self.tokenizer.batch_decode([ids for group in groups for ids in group], skip_special_tokens=True))
        results = [[next(texts) for _ in group] for group in groups]
        return [r[0] for r in results] if num_return_sequences is None else results

    def generate_ids(self, prompts: list[list[int]], n: int = 1, temperature: float = 0) -> list[list[list[int]]]:
        """The engine's tokens of `n` completions of each tokenized prompt (GRPO trains on them as sampled)."""
        engine = Engine(self)
        groups = engine.generate_ids(prompts, n, temperature)
        self.tokens_processed = engine.tokens_processed
        return groups

    def answer(self, *questions: str) -> list[float]:
        prompts = [self.format_prompt(q) for q in questions]
        return [self.parse_answer(g) for g in self.batched_generate(prompts)]


def test_model(checkpoint: str = loader.DEFAULT_CHECKPOINT):
    """Complete two short prompts, one at a time and batched."""
    prompts = ["The cat went up", "The dog went down"]
    model = BaseLLM(checkpoint)
    for prompt in prompts:
        print(f"generate({prompt!r}) -> {model.generate(prompt)!r}")
    print(f"batched_generate({prompts!r}) -> {model.batched_generate(prompts)!r}")


if __name__ == "__main__":
    cli({"test": test_model})
