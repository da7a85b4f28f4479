"""int8 inference on a CPU (`HOMEWORK_QUANT=int8`, `loader.quantized`): which layers it takes, what it keeps, and
which loads get it."""
import copy

import pytest
import torch
from torch.ao.nn.quantized.dynamic import Linear as Int8Linear

from homework import loader, lora, sft
from homework.base_llm import BaseLLM
from tests.conftest import make_tiny_model
from tests.test_base_llm import PROMPTS
from tests.test_sft import EXAMPLES


def policy_with(monkeypatch, dtype: str, quant: str | None):
    monkeypatch.setenv(loader.DTYPE_ENV_VAR, dtype)
    if quant is None:
        monkeypatch.delenv(loader.QUANT_ENV_VAR, raising=False)
    else:
        monkeypatch.setenv(loader.QUANT_ENV_VAR, quant)
    loader.policy.cache_clear()
    try:
        return loader.policy()
    finally:
        loader.policy.cache_clear()


@pytest.fixture
def int8_policy(monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("int8 is a CPU path")
    monkeypatch.setenv(loader.DTYPE_ENV_VAR, "float32")
    monkeypatch.setenv(loader.QUANT_ENV_VAR, "int8")
    loader.policy.cache_clear()
    yield
    loader.policy.cache_clear()


def layer_kinds(model) -> dict[str, set[str]]:
    """The last part of each linear layer's name -> the kinds it comes in: {"q_proj": {"int8"}, "lm_head": {"fp32"}}."""
    kinds = {}
    for name, module in model.named_modules():
        if isinstance(module, (torch.nn.Linear, Int8Linear)):
            kinds.setdefault(name.rsplit(".", 1)[-1], set()).add("int8" if isinstance(module, Int8Linear) else "fp32")
    return kinds


def test_int8_takes_every_linear_layer_but_down_proj_and_lm_head(tokenizer, int8_policy):
    fp32 = make_tiny_model(tokenizer)
    int8 = loader.quantized(copy.deepcopy(fp32).eval())
    assert layer_kinds(int8) == {**{name: {"int8"} for name in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj")},
                                 "down_proj": {"fp32"}, "lm_head": {"fp32"}}
    ids = tokenizer(PROMPTS[2], return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        exact, approx = fp32(ids).logits[0], int8(ids).logits[0]
    assert not torch.equal(exact, approx)  # it did change the arithmetic
    assert (approx - exact).norm() < 0.1 * exact.norm()  # a 2-layer random model of width 16: a coarse bound
    assert (approx.argmax(-1) == exact.argmax(-1)).float().mean() > 0.9


def test_only_inference_loads_are_quantized(tiny_base, tokenizer, int8_policy):
    assert layer_kinds(BaseLLM(str(tiny_base)).model)["q_proj"] == {"int8"}
    assert layer_kinds(BaseLLM(str(tiny_base), dtype=torch.float32).model)["q_proj"] == {"fp32"}  # a training load names its dtype
    assert layer_kinds(BaseLLM(str(tiny_base), quantize=False).model)["q_proj"] == {"fp32"}
    assert layer_kinds(BaseLLM(model=make_tiny_model(tokenizer), tokenizer=tokenizer).model)["q_proj"] == {"fp32"}  # a model passed in: as it is


def last_logits(llm, prompt: str) -> torch.Tensor:
    with torch.inference_mode():
        return llm.model(**llm.tokenizer(prompt, return_tensors="pt")).logits[0, -1]


def test_an_adapter_trains_under_the_int8_policy_and_is_quantized_after_the_merge(tiny_base, tmp_path, int8_policy, monkeypatch):
    out = tmp_path / "adapter"
    lora.train(EXAMPLES, out, lora.Training(checkpoint=str(tiny_base), max_steps=5, batch_size=4, learning_rate=1e-2))  # LoRA on fp32 layers
    int8 = sft.load(out)
    assert set().union(*layer_kinds(int8.model).values()) == {"int8", "fp32"}
    assert not any("lora" in name for name, _ in int8.model.named_modules())  # merged, then quantized
    monkeypatch.setenv(loader.QUANT_ENV_VAR, "none")
    loader.policy.cache_clear()
    prompt = EXAMPLES[0][0]
    tuned, base, approx = last_logits(sft.load(out), prompt), last_logits(BaseLLM(str(tiny_base)), prompt), last_logits(int8, prompt)
    assert (approx - tuned).norm() < (approx - base).norm()  # the int8 model is the tuned one, not the base


def test_int8_is_only_ever_asked_for(monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("the CPU policy")
    assert policy_with(monkeypatch, "float32", None).quantize == "none"
    assert policy_with(monkeypatch, "float32", "int8").quantize == "int8"
    assert policy_with(monkeypatch, "float32", "none").quantize == "none"
    with pytest.raises(loader.CheckpointError, match="float32 only"):
        policy_with(monkeypatch, "bfloat16", "int8")
    with pytest.raises(loader.CheckpointError, match="use none or int8"):
        policy_with(monkeypatch, "float32", "int4")


def test_quantized_leaves_the_model_alone_when_the_policy_says_none(tokenizer, monkeypatch):
    monkeypatch.setenv(loader.QUANT_ENV_VAR, "none")
    loader.policy.cache_clear()
    try:
        model = make_tiny_model(tokenizer)
        assert loader.quantized(model) is model and layer_kinds(model)["q_proj"] == {"fp32"}
    finally:
        loader.policy.cache_clear()
