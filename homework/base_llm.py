"""The base model: prompt -> generation -> parsed answer.

    python -m homework.base_llm test      # completes two short prompts, one at a time and batched
"""
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


class BaseLLM:
    max_new_tokens = 64
    stop_strings = ["</answer>"]  # once every sequence has closed its answer, the batch is done

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
        size = loader.micro_batch_size(self.model, max(lengths, default=0) + self.max_new_tokens, n)
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
        outputs = self.model.generate(
            **inputs,
            max_new_tokens=self.max_new_tokens,
            num_return_sequences=num_return_sequences,
            stop_strings=self.stop_strings or None,
            tokenizer=self.tokenizer,
            pad_token_id=self.tokenizer.pad_token_id,
            **sampling,
        )
        return self.tokenizer.batch_decode(outputs[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)

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
