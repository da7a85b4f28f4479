from .base_llm import BaseLLM
from .cot import load as load_cot
from .data import Dataset
from .rft import load as load_rft
from .sft import load as load_sft

__all__ = ["BaseLLM", "Dataset", "load_cot", "load_sft", "load_rft"]
