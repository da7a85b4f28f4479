"""The base model: prompt -> generation -> parsed answer.

    python -m homework.base_llm test      # completes two short prompts, one at a time and batched
"""
import inspect
import math
import re

import torch
from tqdm import tqdm

from . import loader

_NUMBER = r"[-+]?(?:\d[\d,]*)?\.?\d+(?:[eE][-+]?\d+)?"
_STRICT = re.compile(rf"<answer>\s*({_NUMBER})\s*</answer>")  # the tag holds a number and nothing else
_LENIENT = re.compile(rf"<answer>[^\d<]*?({_NUMBER})")  # first number after the tag: units, no closing tag


def parse_answer(text: str) -> float:
    """The number in `<answer>...</answer>`, or NaN. Never raises."""
    for pattern in (_STRICT, _LENIENT):
        match = pattern.search(text or "")
        if match:
            try:
                return float(match.group(1).replace(",", ""))
            except ValueError:
                pass
    return math.nan


def cache_argument(model) -> str:
    """transformers renamed `past_key_values` to `cache` during 5.x; use whichever this version takes."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


class BaseLLM:
    max_new_tokens = 64
    stop_strings = ["</answer>"]  # once every sequence has closed its answer, the batch is done
    batch_size: int | None = None  # prompts per micro-batch; None: sized to the device (loader.micro_batch_size)

    def __init__(self, checkpoint: str = loader.DEFAULT_CHECKPOINT, model=None, tokenizer=None):
        if model is None:
            model, tokenizer = loader.load(checkpoint)
        else:
            model, tokenizer = loader.prepare(model, tokenizer)
        self.model, self.tokenizer = model, tokenizer
        self.device = model.device

    def format_prompt(self, question: str) -> str:
        return question

    def parse_answer(self, text: str) -> float:
        return parse_answer(text)

    def generate(self, prompt: str) -> str:
        """One prompt, no padding."""
        return self._generate([prompt], num_return_sequences=1, temperature=0)[0]

    def batched_generate(
        self, prompts: list[str], num_return_sequences: int | None = None, temperature: float = 0
    ) -> list[str] | list[list[str]]:
        """A flat list of completions, or one list of `num_return_sequences` per prompt if that is set.

        Prompts are sorted by length so each micro-batch carries little padding; results come back in
        the caller's order. temperature=0 is greedy decoding, anything above it samples.
        """
        n = num_return_sequences or 1
        lengths = [len(ids) for ids in self.tokenizer(prompts)["input_ids"]]
        order = sorted(range(len(prompts)), key=lengths.__getitem__)
        size = self.batch_size or loader.micro_batch_size(self.model, max(lengths, default=0) + self.max_new_tokens, n)
        chunks = [order[i : i + size] for i in range(0, len(order), size)]
        results = [None] * len(prompts)
        for chunk in tqdm(chunks, desc="generate", disable=len(chunks) < 4, leave=False):
            outputs = self._generate([prompts[i] for i in chunk], n, temperature)
            for j, i in enumerate(chunk):
                results[i] = outputs[j * n : (j + 1) * n]
        if num_return_sequences is None:
            return [r[0] for r in results]
        return results

    @torch.inference_mode()
    def _generate(self, prompts: list[str], num_return_sequences: int, temperature: float) -> list[str]:
        inputs = self.tokenizer(prompts, padding=True, return_tensors="pt").to(self.device)
        sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
        if num_return_sequences > 1:
            inputs[cache_argument(self.model)] = self.prefill(inputs, num_return_sequences)
            inputs["input_ids"] = inputs["input_ids"].repeat_interleave(num_return_sequences, dim=0)
            inputs["attention_mask"] = inputs["attention_mask"].repeat_interleave(num_return_sequences, dim=0)
        outputs = self.model.generate(
            **inputs,
            max_new_tokens=self.max_new_tokens,
            stop_strings=self.stop_strings or None,
            tokenizer=self.tokenizer,
            pad_token_id=self.tokenizer.pad_token_id,
            **sampling,
        )
        return self.tokenizer.batch_decode(outputs[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)

    def prefill(self, inputs, copies: int):
        """The KV cache of every prompt but its last token, computed once and repeated `copies` times.
        Plain `num_return_sequences` would run the (long, few-shot) prompt through the model once per sample;
        generate() then only feeds the last prompt token and samples from there."""
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        mask = inputs["attention_mask"][:, :-1]
        positions = (mask.cumsum(-1) - 1).clamp(min=0)  # left padding: real tokens count from 0
        self.model(input_ids=inputs["input_ids"][:, :-1], attention_mask=mask, position_ids=positions, use_cache=True, **{cache_argument(self.model): cache})
        cache.batch_repeat_interleave(copies)
        return cache

    def answer(self, *questions: str) -> list[float]:
        prompts = [self.format_prompt(q) for q in questions]
        return [self.parse_answer(g) for g in self.batched_generate(prompts)]


def test_model(checkpoint: str = loader.DEFAULT_CHECKPOINT):
    prompts = ["The cat went up", "The dog went down"]
    model = BaseLLM(checkpoint)
    for prompt in prompts:
        print(f"generate({prompt!r}) -> {model.generate(prompt)!r}")
    print(f"batched_generate({prompts!r}) -> {model.batched_generate(prompts)!r}")


if __name__ == "__main__":
    loader.cli({"test": test_model})
