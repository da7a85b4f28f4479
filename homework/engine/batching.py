"""The continuous-batching engine behind `BaseLLM.batched_generate` (and GRPO's rollouts): the same decoding as
`model.generate`, faster on a CPU.

A row leaves the batch as soon as it is done and a waiting prompt takes its place; each prompt is prefilled once for
all its samples; the prefix that every prompt shares, and the stem that a unit pair's prompts share, are prefilled
once (kv_cache.py). With the calculator on (calculator.py), the decoder writes each product the model sets up.
docs/PERFORMANCE.md gives the speeds.
"""

import contextlib
import os
from collections import Counter
from dataclasses import dataclass, field

import torch
from tqdm import tqdm
from transformers import DynamicCache

from . import calculator as calc, threads
from .kv_cache import Prefix, RowCache, cache_argument, fill_holes, left_aligned, stacked, stems

CPU_ROWS = 64  # rows decoded at once on a CPU, samples included (micro_batch_size)


def positions(start: int, stop: int, device=None) -> torch.Tensor:
    """`logits_to_keep` as indices. The int form slices the hidden states to a strided view, and torch's
    matmul then copies lm_head's 28M-weight matrix once per batch row (about 80 ms a row on a CPU, half of
    a 16-prompt prefill); indexing gives a dense tensor, and a plain matmul."""
    return torch.arange(start, stop, device=device)


@contextlib.contextmanager
def onednn(enabled: bool):
    """torch.backends.mkldnn.enabled for a block, then as it was."""
    before = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = enabled
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = before


@dataclass
class _Batch:
    """The rows decoding together: the output each writes to (`running`), their cache, and their next-token logits,
    attention masks (as wide as the cache) and positions, one row each."""

    cache: RowCache
    cache_name: str  # the model's keyword for the cache (kv_cache.cache_argument)
    outputs: list[list[int]]  # every output row's tokens so far
    running: list[int] = field(default_factory=list)
    logits: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    position: torch.Tensor | None = None

    def add(self, rows: list[int], state: tuple[torch.Tensor, torch.Tensor, torch.Tensor]):
        """New rows, after the running ones, with their (logits, mask, position) from a prefill."""
        if self.running:
            state = tuple(torch.cat(pair) for pair in zip((self.logits, self.mask, self.position), state))
        self.logits, self.mask, self.position = state
        self.running += rows

    def select(self, index: torch.Tensor):
        """Keep the rows at `index`, in that order (the cache moves only the rows that change place)."""
        self.cache.batch_select_indices(index)
        self.mask, self.position = self.mask[index], self.position[index]
        self.running = [self.running[i] for i in index.tolist()]


class _Beginnings:
    """Where each prompt of a call starts its own prefill (`Engine._beginnings`): after the call's common prefix, or
    after its stem, which is computed when the first of its prompts is admitted and dropped once the last one has
    been."""

    def __init__(self, prompts: list[list[int]], common: Prefix | None, stem_lengths: list[int]):
        self.common = common
        self.common_tokens = common.tokens if common is not None else 0
        self.keys = [tuple(ids[:length]) if length else None for ids, length in zip(prompts, stem_lengths)]
        self.users = Counter(key for key in self.keys if key is not None)  # prompts not yet admitted, per stem
        self.computed: dict[tuple, Prefix] = {}

    def start(self, i: int) -> int:
        """Where prompt i's own tokens begin."""
        return len(self.keys[i]) if self.keys[i] is not None else self.common_tokens

    def saved(self, i: int) -> int:
        """The tokens that prompt i's stem spares its prefill, past the common prefix's."""
        return self.start(i) - self.common_tokens

    def missing(self, indices: list[int]) -> list[list[int]]:
        """The stems of these prompts that are not computed yet, each once."""
        return [
            list(key)
            for key in dict.fromkeys(self.keys[i] for i in indices)
            if key is not None and key not in self.computed
        ]

    def store(self, stems: list[list[int]], prefixes: list[Prefix]):
        self.computed.update((tuple(ids), prefix) for ids, prefix in zip(stems, prefixes))

    def of(self, indices: list[int]) -> list[Prefix | None]:
        return [self.computed[self.keys[i]] if self.keys[i] is not None else self.common for i in indices]

    def release(self, indices: list[int]):
        """These prompts are admitted: a stem that no prompt still waits for is dropped."""
        for i in indices:
            if (key := self.keys[i]) is not None:
                self.users[key] -= 1
                if not self.users[key]:
                    del self.computed[key]


def chunk(lengths: list[int], budget: int | None) -> int:
    """How many of these prompts (the tokens each runs, in order) one forward prefills: as many as keep its rows times
    the longest within `budget` tokens, at least one; all of them without a budget."""
    if not budget:
        return len(lengths)
    take, longest = 0, 0
    for length in lengths:
        longest = max(longest, length)
        if take and (take + 1) * longest > budget:
            break
        take += 1
    return take


class Engine:
    """One call's decoding for `llm` (a BaseLLM): its model, tokenizer, max_new_tokens, stop_strings, prompts_at_once and
    calculator switch. `generate_ids` is the entry point; `tokens_processed` counts what the model ran."""

    # On a CPU, the prompts admitted at once are prefilled in chunks of about this many tokens, by the model's dtype:
    # one forward of 64 prompts of 570 tokens ran at half the speed per token of 16 of them (100 eight-example CoT
    # prompts, 2 cores, bf16: 68 s unchunked, 48 s at 8192). fp32 on AVX2 wants smaller chunks, whose activations
    # stay in cache and which pad less (48 CoT prompts: 29.5 s at 8192, 24.3 s at 1024, 27.1 s at 512). A dtype not
    # named here, and any GPU: all at once.
    cpu_prefill_tokens: dict[torch.dtype, int] = {torch.bfloat16: 8192, torch.float32: 1024}

    def __init__(self, llm):
        self.model, self.tokenizer, self.device = llm.model, llm.tokenizer, llm.model.device
        self.max_new_tokens, self.stop_strings = llm.max_new_tokens, llm.stop_strings
        self.prompts_at_once = llm.prompts_at_once  # BaseLLM.batch_size, else the device's (micro_batch_size)
        self.calculator = llm.calculator
        # tokens the model ran (padding not counted): a cost that does not depend on the machine, beside the seconds
        self.tokens_processed = {"prefill": 0, "decode": 0}

    def generate_ids(self, prompts: list[list[int]], n: int = 1, temperature: float = 0) -> list[list[list[int]]]:
        """The tokens of `n` completions of each tokenized prompt, in the prompts' order; a completion ends with the
        EOS token where it wrote one (GRPO's rollouts, grpo.py, train on these tokens as they were sampled)."""
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]), reverse=True)  # see _generate
        columns = max(map(len, prompts), default=0) + 2 * self.max_new_tokens
        size = min(self.prompts_at_once(n, columns), len(prompts))  # no idle rows
        outputs = self._generate([prompts[i] for i in order], n, temperature, rows=max(size, 1) * n, columns=columns)
        results = [None] * len(prompts)
        for j, i in enumerate(order):
            results[i] = outputs[j * n : (j + 1) * n]
        return results

    @torch.inference_mode()
    def _generate(
        self, prompts: list[list[int]], n: int, temperature: float, rows: int, columns: int
    ) -> list[list[int]]:
        """Continuous batching: decode up to `rows` rows at once, one token per step, and start the next
        prompt as soon as there is room for its `n` rows.

        A row leaves the batch, and the cache, as soon as it writes EOS or closes its answer, so no step
        runs for a finished row and no batch waits for its slowest one. A new prompt runs through the model
        once and its rows share that cache (plain `generate` runs the few-shot prompt once per sample).
        Prompts come longest first so that a new one always fits the columns of the running rows."""
        eos = self.model.generation_config.eos_token_id
        eos = {self.tokenizer.eos_token_id, *(eos if isinstance(eos, list) else [eos])}
        batch = _Batch(
            RowCache(self.model, rows, columns), cache_argument(self.model), [[] for _ in range(len(prompts) * n)]
        )
        calculator = calc.Forcing(self.tokenizer) if self.calculator else None
        beginnings = self._beginnings(prompts, batch.cache_name)
        started = 0  # how many prompts have started
        with threads.fitted():  # fewer threads while other processes keep cores busy
            with tqdm(total=len(prompts), desc="generate", disable=len(prompts) <= 3 * rows // n, leave=False) as bar:
                while batch.running or started < len(prompts):
                    new = min((rows - len(batch.running)) // n, len(prompts) - started)
                    self._admit(batch, prompts, range(started, started + new), n, beginnings)
                    started += new
                    bar.update(new)
                    tokens = self._sample(batch, temperature, calculator)
                    tokens = self._evict(batch, tokens, eos)
                    if batch.running:
                        threads.fit()
                        self._decode_step(batch, tokens)
        return batch.outputs

    def _admit(self, batch: _Batch, prompts: list[list[int]], admitted: range, n: int, beginnings: "_Beginnings"):
        """Prefill the prompts at the indices `admitted` (the longest first) and add their `n` rows each to the batch;
        on a
        CPU in chunks of about cpu_prefill_tokens[dtype] tokens. A prompt counts as its length less what its stem spares
        (the common prefix still counts: every row attends over it), and a chunk pads to its longest, so the chunks take
        the prompts in that order: a unit pair's prompts, short past their stem, run together, and none pads to a full
        prompt. Without stems that is the order they came in."""
        if not admitted:
            return
        budget = self.cpu_prefill_tokens.get(self.model.dtype) if self.device.type == "cpu" else None
        width = {i: len(prompts[i]) - beginnings.saved(i) for i in admitted}  # a chunk's cost per row, as it pads
        order = sorted(admitted, key=width.get, reverse=True)  # stable: without stems, as they came
        batch.cache.reserve(len(prompts[admitted[0]]))  # every row of these fits as wide as the longest of them
        while order:
            threads.fit()  # a CPU's prefill chunk runs for seconds
            take = chunk([width[i] for i in order], budget)
            taken, order = order[:take], order[take:]
            self._compute_stems(beginnings, taken, budget, batch.cache_name)
            logits, prefilled, mask, position = self._extend(
                [prompts[i] for i in taken], beginnings.of(taken), batch.cache_name
            )
            beginnings.release(taken)
            batch.cache.admit(prefilled, n)
            mask = torch.cat(
                [mask.new_zeros(len(taken), batch.cache.end - mask.shape[1]), mask], dim=1
            )  # as wide as the cache
            rows = [i * n + j for i in taken for j in range(n)]
            batch.add(rows, tuple(x.repeat_interleave(n, 0) for x in (logits, mask, position[:, -1:])))

    def _sample(self, batch: _Batch, temperature: float, calculator: "calc.Forcing | None") -> torch.Tensor:
        """Each running row's next token, written to its output; with the calculator, its result tokens in place of
        the model's, and no digit that would change a result it has just written."""
        logits = calculator.mask(batch.logits, batch.running) if calculator else batch.logits
        tokens = self.next_token(logits, temperature)
        if calculator:
            tokens = calculator.force(tokens, batch.running)
        for row, token in zip(batch.running, tokens.tolist()):
            batch.outputs[row].append(token)
        if calculator:  # queue the result for each row that has just written `a * b =`
            calculator.update(batch.running, batch.outputs)
        return tokens

    def _evict(self, batch: _Batch, tokens: torch.Tensor, eos: set[int]) -> torch.Tensor:
        """Drop the rows that are done (EOS, a stop string, max_new_tokens) from the batch and the cache; the tokens
        of the rows that stay."""
        done = finished(self.tokenizer, [batch.outputs[row] for row in batch.running], eos, self.stop_strings)
        keep = [
            i for i, row in enumerate(batch.running) if not done[i] and len(batch.outputs[row]) < self.max_new_tokens
        ]
        if len(keep) == len(batch.running):
            return tokens
        index = torch.tensor(fill_holes(keep), dtype=torch.long, device=self.device)
        batch.select(index)
        return tokens[index]

    def _decode_step(self, batch: _Batch, tokens: torch.Tensor):
        """One token for every running row through the model: the next logits."""
        batch.mask = torch.cat([batch.cache.make_room(batch.mask), batch.mask.new_ones(len(batch.running), 1)], dim=1)
        batch.position = batch.position + 1
        self.tokens_processed["decode"] += len(batch.running)
        # oneDNN's bf16 matmul is slow for a single row on a CPU: a lone row's decode steps take PyTorch's own
        # kernels (135M model, 2 cores: 51-57 ms a step against 67-78; from 2 rows up oneDNN wins)
        one_slow_row = len(batch.running) == 1 and self.device.type == "cpu" and self.model.dtype == torch.bfloat16
        with onednn(enabled=not one_slow_row):
            batch.logits = self.model(
                input_ids=tokens[:, None],
                attention_mask=batch.mask,
                position_ids=batch.position,
                **{batch.cache_name: batch.cache},
                use_cache=True,
            ).logits[:, -1]

    def _beginnings(self, prompts: list[list[int]], cache_name: str, min_tokens: int = 16) -> "_Beginnings":
        """The prompts' shared beginnings: the tokens every prompt starts with (a few-shot prompt's system line and
        template), computed once now when there are at least `min_tokens` of them, and the stems that runs of prompts
        share past those (kv_cache.stems: the examples of one unit pair), computed as their prompts are admitted. Each
        prompt's prefill then runs only what follows its beginning."""
        common = None
        if len(prompts) >= 2:
            length = len(os.path.commonprefix(prompts))
            length = min(length, min(map(len, prompts)) - 1)  # every prompt keeps a token of its own to predict from
            if length >= min_tokens:
                cache = DynamicCache(config=self.model.config)
                self.model(
                    input_ids=torch.tensor([prompts[0][:length]], device=self.device),
                    **{cache_name: cache},
                    use_cache=True,
                    logits_to_keep=positions(length - 1, length, self.device),
                )
                self.tokens_processed["prefill"] += length
                common = Prefix.rows_of(cache, torch.ones(1, length, dtype=torch.long, device=self.device))[0]
        return _Beginnings(prompts, common, stems(prompts, common.tokens if common else 0, min_tokens))

    def _compute_stems(self, beginnings: "_Beginnings", indices: list[int], budget: int | None, cache_name: str):
        """The stems of the prompts at `indices` that are not computed yet, each once, after the common beginning, in
        chunks as the prompts' own prefill."""
        missing = beginnings.missing(indices)
        while missing:
            take = chunk(list(map(len, missing)), budget)
            _, cache, mask, _ = self._extend(missing[:take], [beginnings.common] * take, cache_name)
            beginnings.store(missing[:take], Prefix.rows_of(cache, mask))
            missing = missing[take:]

    def _extend(
        self, prompts: list[list[int]], prefixes: list[Prefix | None], cache_name: str
    ) -> tuple[torch.Tensor, DynamicCache, torch.Tensor, torch.Tensor]:
        """Run (tokenized) prompts through the model once, each after its prefix's cache (None: from the start). Returns
        their next-token logits, their cache (prefix included), its attention mask and the last positions.

        Each prompt's rest is left-padded and attends to its prefix across that padding (masked), as a plain
        left-padded row attends across its own; shorter prefixes are left-padded to the longest. The cache returned
        has its padding on the left only (kv_cache.left_aligned), as wide as the longest prompt."""
        starts = [p.tokens if p is not None else 0 for p in prefixes]
        inputs = self.tokenizer.pad(
            {"input_ids": [ids[start:] for ids, start in zip(prompts, starts)]}, return_tensors="pt"
        ).to(self.device)  # on the left
        mask = inputs["attention_mask"]
        position = torch.tensor(starts, device=self.device)[:, None] + (mask.cumsum(-1) - 1).clamp(
            min=0
        )  # real tokens count on from the prefix
        self.tokens_processed["prefill"] += int(mask.sum())
        cache = DynamicCache(config=self.model.config)
        if any(p is not None for p in prefixes):
            some = next(p for p in prefixes if p is not None)
            cache, before = stacked([p if p is not None else some.empty() for p in prefixes], self.model.config)
            mask = torch.cat([before, mask], dim=1)
        width = inputs["input_ids"].shape[1]
        logits = self.model(
            input_ids=inputs["input_ids"],
            attention_mask=mask,
            position_ids=position,
            **{cache_name: cache},
            use_cache=True,
            logits_to_keep=positions(width - 1, width, self.device),
        ).logits[:, -1]
        return (logits, *left_aligned(cache, mask), position)

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


def finished(tokenizer, outputs: list[list[int]], eos: set[int], stop_strings: list[str]) -> list[bool]:
    """Which token lists end in an `eos` token or have just written a stop string (it can end inside the last token)."""
    window = max((len(s) for s in stop_strings), default=0) + 1  # a stop string spans at most this many tokens
    tails = (
        tokenizer.batch_decode([ids[-window:] for ids in outputs], skip_special_tokens=True)
        if stop_strings
        else [""] * len(outputs)
    )
    return [ids[-1] in eos or any(s in tail for s in stop_strings) for ids, tail in zip(outputs, tails)]


def micro_batch_size(model, seq_len: int, num_return_sequences: int = 1) -> int:
    """How many prompts to generate for at once. On a GPU: as many as the KV cache lets fit in half the
    free memory. On a CPU, throughput stops growing long before memory runs out: on our 2 cores, sampling
    8 rationales for each of 16 questions ran 2.7, 3.0 and 3.2 samples/s with 32, 48 and 64 rows at once."""
    if model.device.type != "cuda":
        return max(1, CPU_ROWS // num_return_sequences)
    c = model.config
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    kv_bytes = 2 * c.num_hidden_layers * c.num_key_value_heads * head_dim * model.dtype.itemsize * seq_len
    act_bytes = 4 * c.intermediate_size * seq_len * model.dtype.itemsize  # prefill activations, generously
    free, _ = torch.cuda.mem_get_info(model.device)
    sequences = int(0.5 * free // (kv_bytes + act_bytes))
    return max(1, min(1024, sequences) // num_return_sequences)
