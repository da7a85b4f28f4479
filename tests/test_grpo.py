"""GRPO: the verifier's reward, our decoder as TRL's rollout engine, and a few steps that learn."""
import re

import pytest
from peft import LoraConfig, get_peft_model
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from homework import loader, settings
from homework.units import rationale
from homework.recipes import grpo
from homework.base_llm import BaseLLM
from homework.rft import RFTModel
from homework.data import Dataset
from homework.units.generator import spread
from homework.units.reader import read_question
from tests.conftest import make_tiny_model


QUESTION, TRUTH = "How many inch are there per 8.5 foot?", 102.0
KEPT = rationale.plain(8.5, "foot", "inch", 12)  # "1 foot = 12 inch. 8.5 * 12 = 102. <answer>102</answer>"


@pytest.mark.parametrize("completion, score, why", [
    (KEPT, 1.0, "what datagen keeps: right, the factor, every step"),
    (KEPT.replace("102", "103"), 0.75, "within 5%, the factor, but the product wrong"),
    (KEPT.replace("102", "110"), 0.25, "the factor alone: the answer 8% off"),
    (rationale.plain(8.5, "foot", "inch", 10), 0.25, "a true product of a false factor"),
    ("8.5 feet is 102 inches. <answer>102</answer>", 0.5, "right, but nothing worked out"),
    ("I don't know.", 0.0, "no answer"),
])
def test_reward_is_the_verifiers_with_partial_credit(completion, score, why):
    assert grpo.reward([completion], answer=[TRUTH], quantity=[8.5], question=[QUESTION]) == [score], why
    assert grpo.accuracy([completion], answer=[TRUTH]) == [float(score >= 0.5)]


class Recorded(BaseLLM):
    """A tiny model whose generate_ids returns set completions and records what it was asked and in which mode."""

    def generate_ids(self, prompts, n=1, temperature=0):
        self.asked = (prompts, n, temperature, self.model.training)
        answer = self.tokenizer("1 * 2 = 2. <answer>2</answer>", add_special_tokens=False)["input_ids"]
        return [[answer, [5, 6, self.tokenizer.eos_token_id], [7, 8]] for _ in prompts]


def test_rollout_samples_each_group_once_and_closes_answers_with_eos(tokenizer, tiny_model):
    llm = Recorded(model=tiny_model, tokenizer=tokenizer)
    llm.model.train()
    run = grpo.rollout(llm, num_generations=3, temperature=0.9)
    out = run(["p one", "p one", "p one", "p two", "p two", "p two"], trainer=None)
    prompts, n, temperature, training = llm.asked
    assert prompts == tokenizer(["p one", "p two"])["input_ids"] and (n, temperature) == (3, 0.9)
    assert training is False and llm.model.training  # sampled in eval mode, then back to training
    eos = tokenizer.eos_token_id
    closed = tokenizer("1 * 2 = 2. <answer>2</answer>", add_special_tokens=False)["input_ids"] + [eos]
    assert out["completion_ids"] == [closed, [5, 6, eos], [7, 8]] * 2  # a truncated one stays as it was
    assert out["prompt_ids"] == [prompts[0]] * 3 + [prompts[1]] * 3 and out["logprobs"] is None
    with pytest.raises(ValueError, match="each prompt 3 times in a row"):
        run(["p one", "p two", "p one"], trainer=None)


def test_grpo_prompts_are_the_training_questions_then_the_generators_each_as_rft_asks_it(tokenizer, tiny_model):
    llm = RFTModel(model=tiny_model, tokenizer=tokenizer)
    rows = grpo.prompts(llm, max_question=20, spread=10, seed=0)
    assert [row["question"] for row in rows] == [q for q, _ in Dataset("train").data[:20] + spread(10, 0)]
    for row in rows:
        reading = read_question(row["question"])
        assert row["prompt"] == llm.format_prompt(row["question"]) and reading.n == row["quantity"]
    off = grpo.prompts(llm, max_question=20, spread=10, seed=0, train_questions=False)
    assert [row["question"] for row in off] == [q for q, _ in spread(10, 0)]


def test_a_few_grpo_steps_raise_the_reward_and_leave_the_base_weights(tokenizer, tmp_path):
    """A task a tiny model can learn: completion tokens with even ids. A small init (0.1) gives logits flat enough for
    the groups' spread and wide enough for LoRA to move. 30 steps at 0.05 raised the mean by 0.43, 0.18 and 0.16 for
    the tiny model's seeds 0, 1 and 2 (AMD EPYC, avx512_bf16); at 0.02 init and a rate of 1.0, by 0.04."""
    llm = BaseLLM(model=make_tiny_model(tokenizer, initializer_range=0.1), tokenizer=tokenizer)
    llm.max_new_tokens = 4
    llm.model = get_peft_model(llm.model, LoraConfig(r=8, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"))
    base = {n: p.detach().clone() for n, p in llm.model.named_parameters() if "lora_" not in n}
    adapter = {n: p.detach().clone() for n, p in llm.model.named_parameters() if "lora_" in n}
    rows = [{"prompt": f"question {i}:"} for i in range(8)]

    def even(completions, completion_ids, **_):
        return [sum(t % 2 == 0 for t in ids[:4]) / 4 for ids in completion_ids]

    def mean_reward():
        torch.manual_seed(1)
        llm.model.eval()
        groups = llm.generate_ids(tokenizer([r["prompt"] for r in rows])["input_ids"], 32, 1.0)
        return sum(sum(even(None, group)) for group in groups) / (len(rows) * 32)

    before = mean_reward()
    trainer = grpo.trainer_for(llm, rows, tmp_path, [even], [1.0], num_generations=8, prompts_per_step=2, temperature=1.0,
                               learning_rate=0.05, max_steps=30, beta=0.0, seed=0, rollout_engine="ours")
    trainer.train()
    after = mean_reward()
    assert 0.3 < before < 0.7 and after > before + 0.1, (before, after)
    assert all(torch.equal(p, base[n]) for n, p in llm.model.named_parameters() if "lora_" not in n)
    assert any(not torch.equal(p, adapter[n]) for n, p in llm.model.named_parameters() if "lora_" in n)
    events = EventAccumulator(str(next((tmp_path / "runs").iterdir()))).Reload()
    assert {"train/reward", "train/signal", "train/frac_reward_zero_std"} <= set(events.Tags()["scalars"])


@pytest.mark.parametrize("flags, message", [
    ({"num_generations": 1}, "--num_generations 1 (2 or more: a group needs a mean)"),
    ({"temperature": 0}, "--temperature 0 (more than 0: GRPO samples)"),
    ({"rollout": "vllm"}, "--rollout 'vllm' (ours or trl)"),
    ({"max_steps": 0}, "--max_steps 0"),
])
def test_bad_grpo_flags_are_refused_before_a_model_loads(flags, message, tmp_path):
    with pytest.raises(settings.UsageError, match=re.escape(message)):
        grpo.train(output_dir=str(tmp_path), **flags)


def test_grpo_without_an_adapter_to_start_from_is_a_clear_error(tmp_path):
    with pytest.raises(loader.CheckpointError, match="no adapter in .*: train one first"):
        grpo.train(output_dir=str(tmp_path / "out"), init_adapter=str(tmp_path / "missing"))
