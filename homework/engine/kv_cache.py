"""The KV cache behind continuous batching in `BaseLLM.batched_generate`.

Why subclass transformers' cache at all: the model's attention layers call `cache.update(...)` and read
back the keys and values to attend over; any object with the `DynamicCache` interface is accepted. Ours
keeps fixed buffers so a decode step writes one column in place, a finished row is overwritten by a
running one, and new prompts' rows are appended, instead of concatenating or re-allocating the whole
cache at every step. Only full-attention layers (`DynamicLayer`) are supported.
"""

import inspect
import os
from dataclasses import dataclass

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


def cache_argument(model) -> str:
    """transformers renamed `past_key_values` to `cache` during 5.x; use whichever this version takes."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


class RowLayer(DynamicLayer):
    """One layer of a KV cache for continuous batching: buffers of fixed size, [rows, heads, columns, dim].

    Every running row ends at the same column (left padding, masked), so a decode step writes one column in
    place. Rows come and go without a copy of the whole cache: a new prompt's rows are written after the
    running ones, right-aligned, and a finished row is overwritten by one of the last rows."""

    def __init__(self, rows: int, columns: int):
        super().__init__()
        self.capacity, self.columns, self.rows, self.end, self.reserved = rows, columns, 0, 0, 0

    def admit(self, keys: torch.Tensor, values: torch.Tensor, repeats: int):
        """Append a prefilled prompt cache, each row `repeats` times. Its columns must fit: prompts come longest
        first."""
        if not self.is_initialized:
            self.lazy_initialization(keys, values)
            self.buffers = [x.new_empty(self.capacity, x.shape[1], self.columns, x.shape[-1]) for x in (keys, values)]
        if self.rows == 0:
            self.end = max(keys.shape[-2], self.reserved)
        pad, start, stop = self.end - keys.shape[-2], self.rows, self.rows + keys.shape[0] * repeats
        assert pad >= 0 and stop <= self.capacity, (pad, stop)
        for buffer, new in zip(self.buffers, (keys, values)):
            buffer[start:stop, :, :pad] = 0  # masked, but must be finite: 0 * nan is nan
            buffer[start:stop, :, pad : self.end] = new.repeat_interleave(repeats, dim=0)
        self.rows = stop
        self._views()

    def reserve(self, columns: int):
        """If the cache is empty when the next prompts are admitted, its rows end at `columns` at least: prompts
        admitted
        together, in any order, fit if none is wider."""
        self.reserved = columns

    def update(self, key_states, value_states, *args, **kwargs):
        end = self.end + key_states.shape[-2]
        for buffer, new in zip(self.buffers, (key_states, value_states)):
            buffer[: self.rows, :, self.end : end] = new
        self.end = end
        self._views()
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor):
        """Row i becomes row indices[i]. Only the rows that move are copied."""
        rows = torch.arange(len(indices), device=indices.device)
        moved = indices != rows
        for buffer in self.buffers:
            buffer[rows[moved]] = buffer[indices[moved]]  # gathered before written: right for any indices
        self.rows = len(indices)
        self._views()

    def trim(self, columns: int):
        """Drop the first `columns` columns (padding in every row) to make room at the end."""
        for buffer in self.buffers:
            buffer[: self.rows, :, : self.end - columns] = buffer[: self.rows, :, columns : self.end].clone()
        self.end -= columns
        self._views()

    def _views(self):
        self.keys, self.values = (b[: self.rows, :, : self.end] for b in self.buffers)


class RowCache(DynamicCache):
    def __init__(self, model, rows: int, columns: int):
        super().__init__(config=model.config)
        assert all(type(layer) is DynamicLayer for layer in self.layers), "only full attention layers"
        self.layers = [RowLayer(rows, columns) for _ in self.layers]

    def admit(self, prefilled: DynamicCache, repeats: int):
        for layer, new in zip(self.layers, prefilled.layers):
            layer.admit(new.keys, new.values, repeats)

    def reserve(self, columns: int):
        for layer in self.layers:
            layer.reserve(columns)

    def make_room(self, mask: torch.Tensor) -> torch.Tensor:
        """If the buffers are full, drop the leading columns that are padding in every running row (`mask`
        is theirs, as wide as the cache). Returns the mask cut to match."""
        if self.end < self.layers[0].columns:
            return mask
        first = int(mask.any(0).int().argmax())
        for layer in self.layers:
            layer.trim(first)
        return mask[:, first:]

    @property
    def end(self) -> int:
        return self.layers[0].end


def fill_holes(keep: list[int]) -> list[int]:
    """The rows to keep (ascending), ordered so that few move: each finished row among the first
    len(keep) takes one of the rows kept beyond them, and the rest stay where they are."""
    kept = set(keep)
    holes = [i for i in range(len(keep)) if i not in kept]
    index = list(range(len(keep)))
    for hole, row in zip(holes, [i for i in keep if i >= len(keep)]):
        index[hole] = row
    return index


@dataclass
class Prefix:
    """The cache of a prompt's beginning that other prompts of the call share, computed once, for one row: each layer's
    (keys, values), [1, heads, columns, dim], and which columns are real tokens, [1, columns] (a beginning computed
    beside longer ones is left-padded, inside it too: the call's common prefix, then padding, then the rest)."""

    layers: list[tuple[torch.Tensor, torch.Tensor]]
    mask: torch.Tensor

    @property
    def tokens(self) -> int:
        """The prompt tokens it holds: where the rest of a prompt that starts with it begins."""
        return int(self.mask.sum())

    @property
    def columns(self) -> int:
        return self.mask.shape[1]

    def empty(self) -> "Prefix":
        """No tokens, in this one's shapes: a row without a prefix beside rows with one."""
        return Prefix([(keys[:, :, :0], values[:, :, :0]) for keys, values in self.layers], self.mask[:, :0])

    @classmethod
    def rows_of(cls, cache: DynamicCache, mask: torch.Tensor) -> list["Prefix"]:
        """Each row of a prefilled cache as a Prefix of its own."""
        return [
            cls([(layer.keys[i : i + 1], layer.values[i : i + 1]) for layer in cache.layers], mask[i : i + 1])
            for i in range(len(mask))
        ]


def stacked(prefixes: list[Prefix], config) -> tuple[DynamicCache, torch.Tensor]:
    """A cache with one row for each entry (entries repeat: the prompts that share one), each left-padded with zeros
    to the widest, and its mask: what a batch of prompts' rests runs after."""
    distinct = list({id(p): p for p in prefixes}.values())  # each prefix once, in order
    slot = {id(p): k for k, p in enumerate(distinct)}
    width = max(p.columns for p in distinct)
    index = torch.tensor([slot[id(p)] for p in prefixes], device=distinct[0].mask.device)

    def rows(parts: list[torch.Tensor]) -> torch.Tensor:  # [distinct, ..., columns(, dim)] -> one row per prompt
        if len(parts) == 1:
            return parts[0].expand(len(prefixes), *parts[0].shape[1:]).contiguous()
        return torch.cat(parts)[index]

    def padded(x: torch.Tensor, dim: int) -> torch.Tensor:
        pad = list(x.shape)
        pad[dim] = width - x.shape[dim]
        return torch.cat([x.new_zeros(pad), x], dim=dim) if pad[dim] else x

    cache = DynamicCache(config=config)
    for i in range(len(distinct[0].layers)):
        keys, values = (rows([padded(p.layers[i][j], 2) for p in distinct]) for j in (0, 1))
        cache.update(keys, values, i)
    return cache, rows([padded(p.mask, 1) for p in distinct])


def stems(prompts: list[list[int]], shared: int, min_tokens: int = 16) -> list[int]:
    """For each prompt, how many of its first tokens it takes from a stem computed once for it and other prompts of the
    call (0: none; `shared` tokens, which every prompt starts with, come before any stem). A few-shot prompt's examples
    are such a stem where the questions of a unit pair share them.

    Sorted, prompts that share a beginning are neighbours, and each run of them may share one stem: what all of them
    start with, less a token so that each keeps one of its own to predict from. A stem saves its tokens past `shared`
    once for each prompt but the first; a run takes one stem or splits where its neighbours share least, whichever
    saves more (so the prompts of one unit pair share their examples, not only the words that every example begins
    with). A stem shorter than `min_tokens` past `shared` is not worth its own forward."""
    order = sorted(range(len(prompts)), key=lambda i: prompts[i])
    common = [len(os.path.commonprefix([prompts[a], prompts[b]])) for a, b in zip(order, order[1:])]

    def best(lo: int, hi: int) -> tuple[int, list[tuple[range, int]]]:  # order[lo:hi]: (tokens saved, [(run, stem)])
        if hi - lo < 2:
            return 0, []
        least = min(common[lo : hi - 1])
        stem = min(least, min(len(prompts[order[j]]) for j in range(lo, hi)) - 1)
        whole = (hi - lo - 1) * (stem - shared) if stem - shared >= min_tokens else 0
        cuts = [lo] + [j + 1 for j in range(lo, hi - 1) if common[j] == least] + [hi]
        parts = [best(a, b) for a, b in zip(cuts, cuts[1:])]
        saved = sum(s for s, _ in parts)
        if whole and whole >= saved:
            return whole, [(range(lo, hi), stem)]
        return saved, [run for _, runs in parts for run in runs]

    result = [0] * len(prompts)
    for run, stem in best(0, len(prompts))[1]:
        for j in run:
            result[order[j]] = stem
    return result


def left_aligned(cache: DynamicCache, mask: torch.Tensor) -> tuple[DynamicCache, torch.Tensor]:
    """The cache with each row's real columns moved to its end, in order, and the columns that are padding in every row
    dropped; and its mask. A prefill after a prefix leaves padding between the two (each rest is left-padded) and, after
    prefixes of different lengths, before each; this makes the cache a plain left-padded prompt's, as wide as its
    longest
    prompt, which RowCache takes (the keys carry their positions already: moving a column changes nothing it attends
    to)."""
    if bool((mask[:, 1:] >= mask[:, :-1]).all()) and bool(mask[:, 0].any()):
        return cache, mask  # already so
    order = torch.sort(mask, dim=1, stable=True).indices[:, -int(mask.sum(1).max()) :]  # padding first, then the tokens
    for layer in cache.layers:
        index = order[:, None, :, None].expand(-1, layer.keys.shape[1], -1, layer.keys.shape[-1])
        layer.keys, layer.values = layer.keys.gather(2, index), layer.values.gather(2, index)
    return cache, mask.gather(1, order)
