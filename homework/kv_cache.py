"""The KV cache behind continuous batching in `BaseLLM.batched_generate`.

Why subclass transformers' cache at all: the model's attention layers call `cache.update(...)` and read
back the keys and values to attend over; any object with the `DynamicCache` interface is accepted. Ours
keeps fixed buffers so a decode step writes one column in place, a finished row is overwritten by a
running one, and new prompts' rows are appended, instead of concatenating or re-allocating the whole
cache at every step. Only full-attention layers (`DynamicLayer`) are supported.
"""
import inspect

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
        self.capacity, self.columns, self.rows, self.end = rows, columns, 0, 0

    def admit(self, keys: torch.Tensor, values: torch.Tensor, repeats: int):
        """Append a prefilled prompt cache, each row `repeats` times. Its columns must fit: prompts come longest first."""
        if not self.is_initialized:
            self.lazy_initialization(keys, values)
            self.buffers = [x.new_empty(self.capacity, x.shape[1], self.columns, x.shape[-1]) for x in (keys, values)]
        if self.rows == 0:
            self.end = keys.shape[-2]
        pad, start, stop = self.end - keys.shape[-2], self.rows, self.rows + keys.shape[0] * repeats
        assert pad >= 0 and stop <= self.capacity, (pad, stop)
        for buffer, new in zip(self.buffers, (keys, values)):
            buffer[start:stop, :, :pad] = 0  # masked, but must be finite: 0 * nan is nan
            buffer[start:stop, :, pad : self.end] = new.repeat_interleave(repeats, dim=0)
        self.rows = stop
        self._views()

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
