"""The names the grader uses. They are imported on first use, so that `python -m homework.sft` (and the
others) run their module once, as __main__, without the package having imported it already."""
import importlib

_EXPORTS = {
    "BaseLLM": ("base_llm", "BaseLLM"),
    "Dataset": ("data", "Dataset"),
    "load_cot": ("cot", "load"),
    "load_sft": ("sft", "load"),
    "load_rft": ("rft", "load"),
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attr = _EXPORTS[name]
    return getattr(importlib.import_module(f".{module}", __name__), attr)
