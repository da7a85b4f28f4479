"""The GPU's dtype path, run on the CPU: generation, the row cache and LoRA training on a bf16 tiny model."""
import pytest
import torch

from homework import loader, settings, sft
from homework.base_llm import BaseLLM

from tests.conftest import lora_train, make_tiny_model
from tests.test_base_llm import PROMPTS
from tests.test_sft import EXAMPLES


@pytest.fixture
def bf16_policy(monkeypatch):
    """Models loaded by path come in bf16, as on a GPU or a bf16 CPU."""
    monkeypatch.setenv(settings.DTYPE, "bfloat16")
    loader.policy.cache_clear()
    yield
    loader.policy.cache_clear()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_greedy_tokens_equal_hf_generate(tokenizer, dtype):
    model = make_tiny_model(tokenizer).to(loader.policy().device, dtype)
    llm = BaseLLM(model=model, tokenizer=tokenizer)
    llm.max_new_tokens, llm.stop_strings = 10, []
    ours = [llm.generate(p) for p in PROMPTS]
    theirs = []
    for prompt in PROMPTS:
        inputs = tokenizer(prompt, return_tensors="pt").to(model.device)
        ids = model.generate(**inputs, max_new_tokens=10, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        theirs.append(tokenizer.decode(ids[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True))
    assert ours == theirs
    assert llm.batched_generate(PROMPTS) == ours  # the row cache, with left padding, in this dtype


def test_lora_trains_on_a_bf16_base_and_reloads(tokenizer, tmp_path, bf16_policy):
    base = make_tiny_model(tokenizer)
    base.save_pretrained(tmp_path / "base")
    tokenizer.save_pretrained(tmp_path / "base")
    model = base.to(loader.policy().device, torch.bfloat16)
    model.name_or_path = model.config._name_or_path = str(tmp_path / "base")  # what the adapter records
    before = {k: v.clone() for k, v in model.state_dict().items()}
    llm, trainer = lora_train(EXAMPLES, tmp_path / "adapter", llm=BaseLLM(model=model, tokenizer=tokenizer), max_steps=30,
                              batch_size=4, learning_rate=5e-2, lora_r=8, lora_alpha=32)
    state = llm.model.state_dict()
    for name, weight in before.items():  # the bf16 base is untouched
        key = next(k for k in state if k.endswith(name.replace(".weight", ".base_layer.weight")) or k.endswith(name))
        assert state[key].dtype == torch.bfloat16 and torch.equal(state[key], weight), name
    trained = [p for n, p in llm.model.named_parameters() if "lora_" in n]
    assert trained and all(p.dtype == torch.float32 for p in trained)  # PEFT keeps the trained weights in fp32
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert losses[-1] < losses[0] - 1.0

    reloaded = sft.load(tmp_path / "adapter")  # a bf16 base by the policy, the adapter merged into it
    assert reloaded.model.dtype == torch.bfloat16
    prompts = [q for q, _ in EXAMPLES[:3]]
    with torch.no_grad():
        ids = tokenizer(prompts, padding=True, return_tensors="pt").to(model.device)
        trained, merged = (m(**ids).logits[:, -1].float() for m in (llm.model, reloaded.model))
    torch.testing.assert_close(merged, trained, rtol=0.05, atol=0.5)  # bf16 rounding of the merged weights
    # The reloaded model's pick is the trained model's, or a token the trained model scores within that rounding
    picked = trained.gather(-1, merged.argmax(-1, keepdim=True)).squeeze(-1)
    assert torch.all(trained.max(-1).values - picked <= 0.5)
