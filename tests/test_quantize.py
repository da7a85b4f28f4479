"""Weight-only int8 on a CPU in fp32 (`homework/engine/quant.py`, `loader.quantized`): the weights it stores, the two paths a
call takes, which layers and which loads get it, and the policy that picks it."""
import copy

import pytest
import torch
from torch import nn

from homework import loader, settings, sft
from homework.engine import quant
from homework.base_llm import BaseLLM
from homework.engine.quant import Int8Linear, quantize
from tests.conftest import lora_train
from tests.conftest import make_tiny_model
from tests.test_base_llm import PROMPTS
from tests.test_sft import EXAMPLES

cpu_only = pytest.mark.skipif(torch.cuda.is_available(), reason="int8 is a CPU path")


def policy_with(monkeypatch, dtype: str | None, quant: str | None):
    for name, value in ((settings.DTYPE, dtype), (settings.QUANT, quant)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    loader.policy.cache_clear()
    try:
        return loader.policy()
    finally:
        loader.policy.cache_clear()


@pytest.fixture
def int8_policy(monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("int8 is a CPU path")
    monkeypatch.setenv(settings.DTYPE, "float32")
    monkeypatch.setenv(settings.QUANT, "int8")
    loader.policy.cache_clear()
    yield
    loader.policy.cache_clear()


def layer_kinds(model) -> dict[str, set[str]]:
    """The last part of each linear layer's name -> the kinds it comes in: {"q_proj": {"int8"}, "lm_head": {"fp32"}}."""
    kinds = {}
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, Int8Linear)):
            kinds.setdefault(name.rsplit(".", 1)[-1], set()).add("int8" if isinstance(module, Int8Linear) else "fp32")
    return kinds


def test_each_weight_is_within_half_a_level_of_its_channels_scale():
    torch.manual_seed(0)
    linear = nn.Linear(64, 48)
    linear.weight.data[3] *= 100  # one loud channel must not coarsen the others
    int8 = Int8Linear(linear)
    assert int8.weight.dtype == torch.int8 and int8.scale.dtype == torch.bfloat16
    error = (int8.weight.float() * int8.scale.float()[:, None] - linear.weight).abs()
    assert (error <= int8.scale.float()[:, None] / 2 + 1e-7).all()
    assert error[0].max() < linear.weight[0].abs().max() / 200  # a quiet channel keeps its own fine scale


@cpu_only
@torch.inference_mode()
def test_a_few_row_decode_step_runs_the_int8_kernel_and_the_rest_the_fp32_layer():
    torch.manual_seed(0)
    linear = nn.Linear(64, 48)
    int8 = Int8Linear(linear)
    prefill = torch.randn(3, 5, 64)
    assert torch.equal(int8(prefill), linear(prefill))
    many = torch.randn(quant.DECODE_ROWS + 1, 1, 64)
    assert torch.equal(int8(many), linear(many))  # a step of many rows: fp32
    step = torch.randn(4, 1, 64)
    out = int8(step)
    assert out.dtype == torch.float32 and out.shape == (4, 1, 48)
    dequantized = nn.functional.linear(step, int8.weight.float() * int8.scale.float()[:, None], linear.bias)
    assert not torch.equal(out, linear(step))  # int8 weights, bf16 activations
    assert torch.allclose(out, dequantized, rtol=0.02, atol=0.02 * dequantized.abs().max().item())
    assert torch.equal(int8(step[2:3]), out[2:3])  # on this path a row's result does not depend on its batch-mates


def test_layers_the_kernel_cannot_take_stay_fp32():
    model = nn.Sequential(nn.Linear(12, 24), nn.Linear(24, 16), nn.Linear(16, 8))  # the kernel needs in_features divisible by 16
    quantize(model)
    assert isinstance(model[0], nn.Linear) and isinstance(model[1], nn.Linear) and isinstance(model[2], Int8Linear)


@cpu_only
def test_quantize_takes_every_linear_layer_lm_head_included_and_leaves_the_embedding(tokenizer):
    fp32 = make_tiny_model(tokenizer, initializer_range=0.02).eval()
    int8 = quantize(copy.deepcopy(fp32))
    assert layer_kinds(int8) == {name: {"int8"} for name in
                                 ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head")}
    assert torch.equal(int8.get_input_embeddings().weight, fp32.get_input_embeddings().weight)
    ids = tokenizer(PROMPTS[2], return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        assert torch.equal(int8(ids).logits, fp32(ids).logits)  # a prompt runs the fp32 layers
        exact, approx = (model(ids[:, -1:], past_key_values=model(ids[:, :-1]).past_key_values).logits[0, -1] for model in (fp32, int8))
    assert not torch.equal(exact, approx)  # a decode step changed the arithmetic
    assert (approx - exact).norm() < 0.05 * exact.norm()
    assert approx.argmax() == exact.argmax()


def test_a_quantized_model_decodes_alike_alone_and_batched(tokenizer):
    llm = BaseLLM(model=quantize(make_tiny_model(tokenizer)), tokenizer=tokenizer)
    batched = llm.batched_generate(PROMPTS)
    assert batched == [llm.generate(p) for p in PROMPTS]
    assert len(set(batched)) > 1


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
    lora_train(EXAMPLES, out, checkpoint=str(tiny_base), max_steps=5, batch_size=4, learning_rate=1e-2)  # LoRA on fp32 layers
    int8 = sft.load(out)
    assert set().union(*layer_kinds(int8.model).values()) == {"int8"}
    assert not any("lora" in name for name, _ in int8.model.named_modules())  # merged, then quantized
    monkeypatch.setenv(settings.QUANT, "none")
    loader.policy.cache_clear()
    prompt = EXAMPLES[0][0]
    tuned, base, approx = last_logits(sft.load(out), prompt), last_logits(BaseLLM(str(tiny_base)), prompt), last_logits(int8, prompt)
    assert (approx - tuned).norm() < (approx - base).norm()  # the int8 model is the tuned one, not the base


@cpu_only
def test_int8_is_the_fp32_cpu_default_and_none_turns_it_off(monkeypatch):
    assert policy_with(monkeypatch, "float32", None).quantize == "int8"
    assert policy_with(monkeypatch, "float32", "none").quantize == "none"
    assert policy_with(monkeypatch, "bfloat16", None).quantize == "none"  # bf16 runs as it was
    with pytest.raises(settings.UsageError, match="float32 only"):
        policy_with(monkeypatch, "bfloat16", "int8")
    with pytest.raises(settings.UsageError, match="use none or int8"):
        policy_with(monkeypatch, "float32", "int4")


@cpu_only
def test_without_the_kernel_the_policy_falls_back_to_fp32(monkeypatch):
    monkeypatch.delattr(torch, "_weight_int8pack_mm")
    chosen = policy_with(monkeypatch, "float32", None)
    assert chosen.quantize == "none" and "int8 kernel" in chosen.why


def test_quantized_leaves_the_model_alone_when_the_policy_says_none(tokenizer, monkeypatch):
    monkeypatch.setenv(settings.QUANT, "none")
    loader.policy.cache_clear()
    try:
        model = make_tiny_model(tokenizer)
        assert loader.quantized(model) is model and layer_kinds(model)["q_proj"] == {"fp32"}
    finally:
        loader.policy.cache_clear()


@pytest.mark.parametrize("heads, kv_heads", [(15, 5), (3, 3), (4, 1)])
def test_other_head_counts_decode_alike_alone_and_batched_in_fp32_and_int8(tokenizer, heads, kv_heads):
    """The course's 360M model has 15 heads over 5 KV heads (ours 9 over 3): the engine, its KV cache and the int8
    layers take any grouping."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=8 * heads, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=512,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True, initializer_range=0.5)
    model = LlamaForCausalLM(config).eval()
    for built in (model, quantize(copy.deepcopy(model))):
        llm = BaseLLM(model=built, tokenizer=tokenizer)
        llm.max_new_tokens = 8
        batched = llm.batched_generate(PROMPTS)
        assert batched == [llm.generate(p) for p in PROMPTS] and len(set(batched)) > 1
        samples = llm.batched_generate(PROMPTS[:2], num_return_sequences=3, temperature=1.0)
        assert [len(group) for group in samples] == [3, 3]
