import copy
import os

import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from homework import loader, settings
from homework.engine import threads


# Kept from the shell: HOMEWORK_DTYPE picks the path the whole suite runs on (HOMEWORK_DTYPE=float32 python -m pytest:
# the path of a CPU without native bf16), HOMEWORK_CACHE says where the embedded model is. Every other HOMEWORK_*
# variable would change what the tests load or read.
SUITE_SETTINGS = {settings.DTYPE, settings.CACHE}


def set_homework_variables() -> list[str]:
    """The HOMEWORK_* variables set now, but SUITE_SETTINGS."""
    return [name for name in os.environ if name.startswith("HOMEWORK_") and name not in SUITE_SETTINGS]


def pytest_configure(config):
    """The shell's HOMEWORK_* variables (but SUITE_SETTINGS) are gone before any test module is imported: some read
    data at import time."""
    for name in set_homework_variables():
        del os.environ[name]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """No HOMEWORK_* variable from the shell (gpu_check sets HOMEWORK_CHECKPOINT, a user HOMEWORK_DATA) but SUITE_SETTINGS.
    torch's thread count stays as it is (HOMEWORK_THREADS=fixed): on a busy machine the fitted count could change between
    the two runs that a test compares token for token, and with it the order of a float sum (test_threads.py tests
    the fitting itself)."""
    for name in set_homework_variables():
        monkeypatch.delenv(name)
    monkeypatch.setenv(settings.THREADS, "fixed")
    monkeypatch.setattr(threads, "_fitter", None)


@pytest.fixture(scope="session")
def shared_tokenizer():
    """The real SmolLM2 tokenizer (from the embedded model, converted on first use), loaded once."""
    return AutoTokenizer.from_pretrained(loader.embedded_dir())


@pytest.fixture
def tokenizer(shared_tokenizer):
    """A fresh copy for each test: every BaseLLM sets its tokenizer's padding side and pad token."""
    return copy.deepcopy(shared_tokenizer)


def make_tiny_model(tokenizer, seed: int = 0, initializer_range: float = 0.5):
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
        initializer_range=initializer_range,  # 0.5: peaked logits, no near-ties in greedy tests, and a loss LoRA can move
    )
    return LlamaForCausalLM(config)


@pytest.fixture
def tiny_model(tokenizer):
    """On the policy's device: tests put their tensors on `tiny_model.device`, so the suite runs on a GPU too."""
    return make_tiny_model(tokenizer).to(loader.policy().device)


def pytest_collection_modifyitems(config, items):
    """Tests marked gpu need CUDA; without it they are skipped."""
    if not torch.cuda.is_available():
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(pytest.mark.skip(reason="needs CUDA"))


@pytest.fixture
def tiny_base(tmp_path, tokenizer):
    """A tiny random Llama saved as a local model directory, so it loads like any checkpoint."""
    path = tmp_path / "tiny_base"
    make_tiny_model(tokenizer).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture
def fp32_policy(monkeypatch):
    """Models loaded by path come in fp32, unquantized, whatever the machine (or HOMEWORK_DTYPE) says: for tests
    that compare outputs token for token across a save and a reload."""
    monkeypatch.setenv(settings.DTYPE, "float32")
    monkeypatch.setenv(settings.QUANT, "none")
    loader.policy.cache_clear()
    yield
    loader.policy.cache_clear()


def lora_train(examples, output_dir, checkpoint=None, llm=None, **settings):
    """(the llm, the Trainer) after sft.train_lora on (prompt, completion) examples: `llm`, else a BaseLLM of
    `checkpoint` in the training dtype."""
    from homework import sft, training
    from homework.base_llm import BaseLLM

    llm = llm or BaseLLM(checkpoint, dtype=loader.policy().train_dtype)
    return llm, sft.train_lora(llm, examples, output_dir, **{**training.defaults(sft.train), **settings})
