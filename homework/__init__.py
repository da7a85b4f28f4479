"""The course starter's package surface: `BaseLLM`, `Dataset`, `load_cot`, `load_sft`, `load_rft`, and the
submodules (`module.data.benchmark`, ...), as the course's grader reaches them.

The homework's parts: base_llm, cot, sft, datagen, rft, data. Beside them: engine/ (continuous batching and the rest
of the speed), units/ (the unit reader, table, numbers, data generator and verifier), recipes/ (the one-command
recipe, GRPO, the bench). The stages are imported on first use, so that `python -m homework.sft` runs its module once,
as __main__. Imports are relative, so the folder works under any name (the grader imports it by path)."""
import importlib

# The libraries that load and run a model come with the package, as with the starter's eager imports: the course's
# grader imports the package, then starts each case's clock, and these imports (about 6 s on a 2-core CPU) would
# otherwise count against the limit of the case that first loads a model.
import peft  # noqa: F401
import torch  # noqa: F401
import transformers.tokenization_utils_tokenizers  # noqa: F401
from transformers import LlamaForCausalLM  # noqa: F401  (the Llama modeling code SmolLM2 runs on)

_EXPORTS = {
    "BaseLLM": ("base_llm", "BaseLLM"),
    "Dataset": ("data", "Dataset"),
    "load_cot": ("cot", "load"),
    "load_sft": ("sft", "load"),
    "load_rft": ("rft", "load"),
}
_SUBMODULES = ("adapters", "base_llm", "cli", "cot", "data", "datagen", "engine", "evaluation", "loader", "recipes",
               "rft", "sampling", "sft", "training", "units")
__all__ = [*_EXPORTS, *_SUBMODULES]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)  # also sets it as an attribute of the package
    if name in _EXPORTS:
        module, attr = _EXPORTS[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *__all__])
