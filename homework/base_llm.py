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


def kv_cache(model, room: int):
    """A DynamicCache whose layers keep keys and values in a buffer with room for `room` more positions
    after the first update (the prompt); writing past that fails loudly."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    class BufferedLayer(DynamicLayer):
        """A decode step writes its position in place. DynamicLayer copies the whole cache every step
        (torch.cat): on our CPU, 32 rows of a few-shot prompt, that made a step 15-20% slower."""

        def update(self, key_states, value_states, *args, **kwargs):
            start = self.keys.shape[-2] if self.is_initialized else 0
            end = start + key_states.shape[-2]
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
                self.buffers = [x.new_empty(*x.shape[:2], end + room, x.shape[-1]) for x in (key_states, value_states)]
            for buffer, new in zip(self.buffers, (key_states, value_states)):
                buffer[..., start:end, :] = new
            self.keys, self.values = (b[..., :end, :] for b in self.buffers)
            return self.keys, self.values

        def _apply(self, fn):
            length = self.keys.shape[-2]
            self.buffers = [fn(b) for b in self.buffers]
            self.keys, self.values = (b[..., :length, :] for b in self.buffers)

        def batch_repeat_interleave(self, repeats: int):
            self._apply(lambda b: b.repeat_interleave(repeats, dim=0))

        def batch_select_indices(self, indices: torch.Tensor):
            self._apply(lambda b: b[indices])

    cache = DynamicCache(config=model.config)
    cache.layers = [BufferedLayer() if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache


class BaseLLM:
    max_new_tokens = 64
    stop_strings = ["</answer>"]  # a row that has closed its answer is done and leaves the batch
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
        """Decode one micro-batch, one token per step, with the KV cache holding only the rows still running.

        The left-padded prompts run through the model once; each then gets `num_return_sequences` copies
        of its cache (plain `generate` would run the long few-shot prompt once per sample). A row leaves
        the batch, and the cache, as soon as it writes EOS or closes its answer: rambling samples no longer
        hold a whole batch to `max_new_tokens`, and the steps get cheaper as rows finish."""
        inputs = self.tokenizer(prompts, padding=True, return_tensors="pt").to(self.device)
        mask = inputs["attention_mask"]
        position = (mask.cumsum(-1) - 1).clamp(min=0)  # left padding: real tokens count from 0
        cache = kv_cache(self.model, room=self.max_new_tokens)
        step_kwargs = {cache_argument(self.model): cache, "use_cache": True, "logits_to_keep": 1}
        logits = self.model(input_ids=inputs["input_ids"], attention_mask=mask, position_ids=position, **step_kwargs).logits[:, -1]
        if num_return_sequences > 1:
            cache.batch_repeat_interleave(num_return_sequences)
            logits, mask = logits.repeat_interleave(num_return_sequences, 0), mask.repeat_interleave(num_return_sequences, 0)
        position = position[:, -1:].repeat_interleave(num_return_sequences, 0)

        eos = self.model.generation_config.eos_token_id
        eos = {self.tokenizer.eos_token_id, *(eos if isinstance(eos, list) else [eos])}
        outputs = [[] for _ in range(logits.shape[0])]
        running = list(range(logits.shape[0]))  # which output each row of the batch writes to
        for step in range(self.max_new_tokens):
            tokens = self.next_token(logits, temperature)
            for row, token in zip(running, tokens.tolist()):
                outputs[row].append(token)
            keep = [i for i, done in enumerate(self.finished([outputs[row] for row in running], eos)) if not done]
            if not keep or step == self.max_new_tokens - 1:
                break
            if len(keep) < len(running):
                index = torch.tensor(keep, device=self.device)
                cache.batch_select_indices(index)
                mask, position, tokens = mask[index], position[index], tokens[index]
                running = [running[i] for i in keep]
            mask = torch.cat([mask, mask.new_ones(len(running), 1)], dim=1)
            position = position + 1
            logits = self.model(input_ids=tokens[:, None], attention_mask=mask, position_ids=position, **step_kwargs).logits[:, -1]
        return self.tokenizer.batch_decode(outputs, skip_special_tokens=True)

    def next_token(self, logits: torch.Tensor, temperature: float) -> torch.Tensor:
        """Greedy at temperature 0. Otherwise sample as `generate` does by default: logits / temperature,
        then the model's top-k (50 unless its generation config says otherwise) and top-p."""
        if temperature <= 0:
            return logits.argmax(-1)
        config = self.model.generation_config
        top_k = 50 if config.top_k is None else config.top_k
        logits = logits.float() / temperature
        values, index = logits.topk(min(top_k, logits.shape[-1])) if top_k else logits.sort(-1, descending=True)
        probs = values.softmax(-1)
        if config.top_p is not None and config.top_p < 1:
            probs[probs.cumsum(-1) - probs > config.top_p] = 0  # the smallest head whose mass reaches top_p
        return index.gather(-1, torch.multinomial(probs, 1)).squeeze(-1)

    def finished(self, outputs: list[list[int]], eos: set[int]) -> list[bool]:
        """Which token lists end in an `eos` token or have just written a stop string (it can end inside the last token)."""
        window = max((len(s) for s in self.stop_strings), default=0) + 1  # a stop string spans at most this many tokens
        tails = self.tokenizer.batch_decode([ids[-window:] for ids in outputs], skip_special_tokens=True) if self.stop_strings else [""] * len(outputs)
        return [ids[-1] in eos or any(s in tail for s in self.stop_strings) for ids, tail in zip(outputs, tails)]

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
