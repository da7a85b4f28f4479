"""GRPO's rollouts on the two engines `python -m homework.recipes.grpo train --rollout ours|trl` can use: our decoder
(`BaseLLM.generate_ids`, each prompt prefilled once for its group) against HF `generate` called as TRL's
GRPOTrainer calls it when no rollout function is given (each prompt repeated once per completion, left-padded,
sampled with TRL's default filters). The model is the one GRPO trains: the base model with the RFT adapter, LoRA
unmerged, in the training dtype, on GRPO's own prompts (off-grid training quantities).

    python scripts/rollout_engines.py                 # 4 steps of 2 prompts x 8 completions, GRPO's defaults
    python scripts/rollout_engines.py --steps 2 --num_generations 16
"""
import sys
import time
from pathlib import Path

import fire
import torch
from transformers import GenerationConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo's homework/, from any folder
from homework import rft
from homework.recipes import grpo  # noqa: E402
from homework.rft import RFTModel  # noqa: E402


def trl_generation_config(llm: RFTModel, temperature: float) -> GenerationConfig:
    """GRPOConfig's defaults (top_p 1, top_k 0, no min_p, repetition penalty 1), as GRPOTrainer builds its config."""
    return GenerationConfig(max_new_tokens=llm.max_new_tokens, do_sample=True, pad_token_id=llm.tokenizer.pad_token_id,
                            bos_token_id=llm.tokenizer.bos_token_id, eos_token_id=llm.tokenizer.eos_token_id,
                            temperature=temperature, top_p=1.0, top_k=0, repetition_penalty=1.0)


def main(steps: int = 4, num_generations: int = 8, prompts_per_step: int = 2, temperature: float = 1.0, seed: int = 0):
    torch.manual_seed(seed)
    llm = grpo.policy_model(rft.MODEL_DIR)
    llm.model.eval()
    rows = grpo.prompts(llm, None, offgrid=2, seed=seed, train_questions=False)  # grpo train's defaults
    config = trl_generation_config(llm, temperature)
    totals = {"ours": [0.0, 0], "trl": [0.0, 0]}
    for step in range(steps):
        heads = [row["prompt"] for row in rows[step * prompts_per_step : (step + 1) * prompts_per_step]]
        start = time.perf_counter()
        groups = llm.generate_ids(llm.tokenizer(heads)["input_ids"], num_generations, temperature)
        ours = time.perf_counter() - start, sum(len(ids) for group in groups for ids in group)

        batch = llm.tokenizer([h for h in heads for _ in range(num_generations)], return_tensors="pt", padding=True).to(llm.device)
        start = time.perf_counter()
        with torch.inference_mode():
            out = llm.model.generate(**batch, generation_config=config)[:, batch["input_ids"].shape[1] :]
        trl = time.perf_counter() - start, int((out != llm.tokenizer.pad_token_id).sum())
        for name, (seconds, tokens) in (("ours", ours), ("trl", trl)):
            totals[name][0] += seconds
            totals[name][1] += tokens
        print(f"step {step}: ours {ours[0]:.1f} s ({ours[1]} tokens), HF generate as TRL calls it {trl[0]:.1f} s ({trl[1]} tokens)")
    for name, (seconds, tokens) in totals.items():
        print(f"{name}: {seconds:.1f} s, {tokens} completion tokens, {tokens / seconds:.0f} tokens/s")


if __name__ == "__main__":
    fire.Fire(main)
