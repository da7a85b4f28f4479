"""Online RL from the RFT model: GRPO (TRL's GRPOTrainer) with our verifier as the reward.

    python -m homework.recipes.grpo train                    # from homework/rft_model into homework/grpo_model
    python -m homework.recipes.grpo train --max_steps 10     # a short run
    python -m homework.recipes.grpo test --split offgrid     # valid, reworded or offgrid
    python -m homework.recipes.grpo ask "How many grams in 3.7 lb?"
    python -m homework.recipes.grpo show                     # a prompt, sampled completions and each one's reward

RFT trains on rationales sampled once, before training. GRPO samples as it trains: for each prompt, `num_generations`
completions from the current model; each is scored by `reward`, and the loss (TRL's, DAPO's token-level
normalization, no KL term) pushes up the completions above their group's mean and down those below it. A group
whose completions all score alike teaches nothing: tensorboard logs the fraction of groups that do (`signal`).

What is ours and what is TRL's: TRL's GRPOTrainer computes the log-probabilities, the advantages and the loss, and
logs. The rollouts are our decoder's (`BaseLLM.generate_ids`: continuous batching, each prompt prefilled once for
all its samples), plugged in as GRPOTrainer's `rollout_func`; `--rollout trl` samples with TRL's own `generate`.
The prompts are RFT's (`rft.RFTModel`), for the training questions and `spread` more of the generator's
(`units.generator.spread`).

GRPO needs `trl` (in requirements.txt), which no other stage does.
"""

from pathlib import Path

import torch

from .. import adapters, loader, rft
from ..base_llm import parse_answer
from ..cli import check_flags, cli, is_count
from ..data import Dataset, is_answer_valid
from ..engine.batching import finished
from ..evaluation import evaluate
from ..settings import UsageError
from ..rft import RFTModel
from ..units import rationale
from ..units.generator import spread as spread_questions
from ..units.reader import read_question, readable

MODEL_DIR = Path(__file__).resolve().parents[1] / "grpo_model"


def checks(completion: str, answer: float, quantity: float, question: str) -> tuple[bool, bool, bool]:
    """(the answer is right, the first sentence states the true factor, every step holds at the factor stated)."""
    factor = rationale.stated_factor(completion)
    return (
        is_answer_valid(parse_answer(completion), answer),
        factor is not None and abs(factor * quantity / answer - 1) < 0.01,
        rationale.consistent(question, completion),
    )


def reward(completions: list[str], answer: list[float], quantity: list[float], question: list[str], **_) -> list[float]:
    """The verifier's score: 0.5 for a right answer (within 5%), 0.25 for a true statement of the factor, 0.25 for
    steps that all hold at the factor it states. 1.0 is what datagen keeps; the partial credit ranks the misses of a
    group, so a group that
    only states the factor right (most misses off the grid are a product 5-15% off) still has something to learn."""
    return [
        0.5 * right + 0.25 * factor + 0.25 * arithmetic
        for right, factor, arithmetic in (
            checks(c, a, n, q) for c, a, n, q in zip(completions, answer, quantity, question)
        )
    ]


def accuracy(completions: list[str], answer: list[float], **_) -> list[float]:
    """1 for a right answer: logged beside the reward (weight 0), the grader's measure."""
    return [float(is_answer_valid(parse_answer(c), a)) for c, a in zip(completions, answer)]


def rollout(llm: RFTModel, num_generations: int, temperature: float):
    """GRPOTrainer's rollout_func on our decoder. TRL hands over each prompt `num_generations` times in a row (one row
    per completion); each group's prompt is prefilled once and sampled `num_generations` times. A completion that
    closed its answer gets the EOS token the RFT model was trained to write next, as TRL's own `generate` would
    have sampled it. The model samples in eval mode and goes back to training."""
    eos = llm.tokenizer.eos_token_id

    def run(prompts: list[str], trainer) -> dict:
        heads = prompts[::num_generations]
        if [p for p in heads for _ in range(num_generations)] != list(prompts):
            raise ValueError(f"rollout: expected each prompt {num_generations} times in a row")
        prompt_ids = llm.tokenizer(heads)["input_ids"]
        training = llm.model.training
        llm.model.eval()
        try:
            groups = llm.generate_ids(prompt_ids, num_generations, temperature)
        finally:
            llm.model.train(training)
        completions = [ids for group in groups for ids in group]
        done = finished(
            llm.tokenizer, completions, {eos}, llm.stop_strings
        )  # EOS or a closed answer, read once for the whole batch
        completions = [ids + [eos] if ended and ids[-1] != eos else ids for ids, ended in zip(completions, done)]
        return {
            "prompt_ids": [ids for ids in prompt_ids for _ in range(num_generations)],
            "completion_ids": completions,
            "logprobs": None,
        }

    return run


def prompts(
    llm: RFTModel, max_question: int | None, spread: int, seed: int, train_questions: bool = True
) -> list[dict]:
    """One row per question: the RFT prompt, the question, its answer and quantity (the reward's columns). The
    questions are the training questions (unless not `train_questions`) and `spread` more of the generator's."""
    trained = set() if train_questions else {q for q, _ in Dataset("train").data}
    rows = []
    train = [tuple(row) for row, *_ in readable(Dataset("train").data[:max_question], "GRPO")]
    for question, answer in train + (spread_questions(spread, seed) if spread else []):
        if question not in trained:
            rows.append(
                {
                    "prompt": llm.format_prompt(question),
                    "question": question,
                    "answer": float(answer),
                    "quantity": read_question(question).n,
                }
            )
    return rows


def signal_logged():
    """A callback that logs `signal`, the fraction of groups whose rewards differ (TRL logs the others:
    frac_reward_zero_std),
    before the tensorboard callback writes the logs."""
    from transformers import TrainerCallback

    class Signal(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs is not None and "frac_reward_zero_std" in logs:
                logs["signal"] = 1.0 - logs["frac_reward_zero_std"]

    return Signal()


def trainer_for(
    llm: RFTModel,
    rows: list[dict],
    output_dir: Path,
    reward_funcs: list,
    reward_weights: list[float],
    *,
    num_generations: int,
    prompts_per_step: int,
    temperature: float,
    learning_rate: float,
    max_steps: int,
    beta: float,
    seed: int,
    rollout_engine: str,
):
    """TRL's GRPOTrainer over `llm.model` (a trainable PeftModel) and `rows`: one optimizer step per `prompts_per_step`
    prompts, their groups accumulated one at a time; tensorboard logs in output_dir/runs."""
    try:
        import datasets
        from trl import GRPOConfig, GRPOTrainer
    except ImportError:
        raise UsageError("GRPO needs trl: pip install -r requirements.txt") from None
    policy = loader.policy()
    args = GRPOConfig(
        output_dir=str(output_dir),
        report_to="tensorboard",
        logging_steps=1,
        save_strategy="no",
        seed=seed,
        disable_tqdm=False,
        learning_rate=learning_rate,
        lr_scheduler_type="constant",
        max_steps=max_steps,
        beta=beta,
        per_device_train_batch_size=num_generations,
        gradient_accumulation_steps=prompts_per_step,  # one group a micro-step
        num_generations=num_generations,
        max_completion_length=llm.max_new_tokens,
        temperature=temperature,
        reward_weights=reward_weights,
        gradient_checkpointing=policy.gradient_checkpointing,
        **policy.trainer_flags,
        dataloader_pin_memory=llm.model.device.type == "cuda",
    )
    engine = {"ours": rollout(llm, num_generations, temperature), "trl": None}[rollout_engine]
    signal = signal_logged()
    trainer = GRPOTrainer(
        model=llm.model,
        reward_funcs=reward_funcs,
        args=args,
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=llm.tokenizer,
        rollout_func=engine,
        callbacks=[signal],
    )
    callbacks = trainer.callback_handler.callbacks
    callbacks.insert(0, callbacks.pop(callbacks.index(signal)))  # before the tensorboard callback writes the logs
    return trainer


def policy_model(init_adapter: str | Path) -> RFTModel:
    """The model GRPO trains: the base model `init_adapter` was trained on, in the training dtype, with that adapter
    as a trainable (unmerged) LoRA."""
    from peft import PeftConfig, PeftModel

    base = PeftConfig.from_pretrained(adapters.require(init_adapter)).base_model_name_or_path
    llm = RFTModel(base, dtype=loader.policy().train_dtype)
    llm.model = PeftModel.from_pretrained(llm.model, init_adapter, is_trainable=True)
    return llm


def train(
    output_dir: str = str(MODEL_DIR),
    init_adapter: str = str(rft.MODEL_DIR),
    max_steps: int = 30,
    num_generations: int = 8,
    prompts_per_step: int = 2,
    temperature: float = 1.0,
    learning_rate: float = 1e-4,
    beta: float = 0.0,
    max_question: int | None = None,
    spread: int = 200,
    train_questions: bool = False,
    rollout: str = "ours",
    seed: int = 0,
    eval_questions: int = 100,
):
    """GRPO from an RFT adapter on the verifier's reward; saves the adapter to output_dir and prints the accuracy.

    Args:
        output_dir: where the adapter goes (tensorboard logs in output_dir/runs)
        init_adapter: the adapter to start from (the shipped RFT model)
        max_steps: optimizer steps
        num_generations: completions sampled per prompt (a group)
        prompts_per_step: prompts (groups) per optimizer step
        temperature: sampling temperature of the rollouts
        learning_rate: constant learning rate
        beta: KL coefficient against the starting adapter; 0: none (TRL's default, no reference model)
        max_question: only the first this many training questions; none: all of them
        spread: this many questions of the generator's besides, at quantities of every digit length
        train_questions: the training questions too; false: only the off-grid quantities (the RFT model gets most
            groups of training questions all right, which teaches nothing)
        rollout: ours (BaseLLM.generate_ids) or trl (GRPOTrainer's own generate)
        seed: of the prompts' order and the sampling
        eval_questions: valid questions to evaluate on afterwards (0: none)"""
    check_flags(
        [
            ("max_steps", max_steps, is_count(max_steps), "1 or more"),
            ("num_generations", num_generations, is_count(num_generations, 2), "2 or more: a group needs a mean"),
            ("prompts_per_step", prompts_per_step, is_count(prompts_per_step), "1 or more"),
            (
                "temperature",
                temperature,
                isinstance(temperature, (int, float)) and temperature > 0,
                "more than 0: GRPO samples",
            ),
            ("rollout", rollout, rollout in ("ours", "trl"), "ours or trl"),
            ("eval_questions", eval_questions, is_count(eval_questions, 0), "0 for none, or more"),
        ]
    )
    torch.manual_seed(seed)
    llm = policy_model(init_adapter)
    rows = prompts(llm, max_question, spread, seed, train_questions)
    print(f"{len(rows)} prompts, {max_steps} steps of {prompts_per_step} x {num_generations} completions")
    trainer = trainer_for(
        llm,
        rows,
        Path(output_dir),
        [reward, accuracy],
        [1.0, 0.0],
        num_generations=num_generations,
        prompts_per_step=prompts_per_step,
        temperature=temperature,
        learning_rate=learning_rate,
        max_steps=max_steps,
        beta=beta,
        seed=seed,
        rollout_engine=rollout,
    )
    trainer.train()
    llm.model.eval()
    if trainer.is_world_process_zero():
        adapters.save(llm.model, Path(output_dir))
        if eval_questions:
            evaluate(llm, eval_questions)


def load(path: str | Path = MODEL_DIR, calculator: bool = False) -> RFTModel:
    """The GRPO model: RFT's prompt, with the adapter GRPO trained (loaded as rft loads its own)."""
    return rft.load(path, calculator)


def test(path: str = str(MODEL_DIR), max_question: int = 100, split: str = "valid", calculator: bool = False):
    """Accuracy on the first max_question questions of a split, per category and kind of quantity, and the misses by
    kind."""
    rft.test(path, max_question, split, calculator)


def ask(question: str, path: str = str(MODEL_DIR), show_prompt: bool = False, calculator: bool = False):
    """Answer one question: what the model wrote, the parsed answer and pint's."""
    rft.ask(question, path, show_prompt, calculator)


def show(
    index: int = 0,
    path: str = str(rft.MODEL_DIR),
    num_generations: int = 8,
    temperature: float = 0.7,
    spread: int = 200,
    seed: int = 0,
):
    """A training prompt of GRPO, then `num_generations` completions the model at `path` samples for it, each with its
    reward and the three checks: what one group looks like to the trainer.

    Args:
        index: which GRPO prompt (the training questions first, then the off-grid ones)
        path: the adapter that samples (the RFT model GRPO starts from, or a GRPO model)
        num_generations: completions to sample (a group)
        temperature: sampling temperature
        spread: the generator's questions, as train's flag
        seed: of the off-grid quantities"""
    llm = rft.load(path)
    rows = prompts(llm, None, spread, seed)
    if not 0 <= index < len(rows):
        raise UsageError(f"there are {len(rows)} GRPO prompts: no prompt {index}")
    row = rows[index]
    print(row["prompt"])
    completions = llm.batched_generate([row["prompt"]], num_return_sequences=num_generations, temperature=temperature)[
        0
    ]
    scores = reward(completions, *([row[k]] * num_generations for k in ("answer", "quantity", "question")))
    for completion, score in zip(completions, scores):
        right, factor, arithmetic = checks(completion, row["answer"], row["quantity"], row["question"])
        print(
            f"reward {score:.2f} (answer {'right' if right else 'wrong'}, factor {'true' if factor else 'false'}, "
            f"steps {'hold' if arithmetic else 'fail'}): {completion!r}"
        )


if __name__ == "__main__":
    cli({"train": train, "test": test, "ask": ask, "show": show}, {"RFTModel.max_new_tokens": RFTModel.max_new_tokens})
