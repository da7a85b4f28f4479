"""Supervised fine-tuning: LoRA on "question <answer>number</answer>", no chat template. The question is read
first and asked in one wording ("Convert 3 foot to inch." for "How many inches in 3 feet?" and "3 ft to in"),
so the model learns conversions, not sentences; each training question is also asked with other quantities.

    python -m homework.sft train                  # trains, saves homework/sft_model, prints the accuracy (~30 min on 2 cores)
    python -m homework.sft test                   # evaluates homework/sft_model (or: test PATH)
    python -m homework.sft test --split reworded  # ... on the same questions asked in other words
    python -m homework.sft ask "How many inches in 3 feet?"
    python -m homework.sft show                   # one training example, token by token, marking what is trained on
    accelerate launch -m homework.sft train       # several GPUs, one process each
    torchrun --nproc_per_node 2 -m homework.sft train   # several processes on a CPU
"""
import inspect
import math
import os
import shutil
import tempfile
from pathlib import Path

import torch

from . import loader
from .base_llm import BaseLLM, positions
from .cot import fmt, plain_numbers
from .data import Dataset, ask as ask_model, checked_question, evaluate
from .units import read_question, reword, unit_name

MODEL_DIR = Path(__file__).resolve().parent / "sft_model"


def round_answer(x: float) -> float:
    """Three significant digits: short to write, at most 0.5% off, well inside the 5% tolerance."""
    return x if x == 0 else round(x, 2 - math.floor(math.log10(abs(x))))


def answer_text(answer: float) -> str:
    return f" <answer>{fmt(round_answer(answer))}</answer>"


def plain_question(question: str) -> str:
    """The question in one wording, with one name per unit: "How many inches in 3 feet?", "3 ft to in" and
    "Express 3 foot in in." all become "Convert 3 foot to inch.". Without any reasoning written, what the
    model learns of a conversion in one wording barely carries over to another (docs/EXPERIMENTS.md), so
    the reader's work is done before the model sees the question. A question that doesn't read is kept as
    written (numbers made plain)."""
    reading = read_question(question)
    if reading is None:
        return plain_numbers(question)
    src, dst = map(unit_name, reading.units)
    return f"Convert {fmt(reading.n)} {src} to {dst}."


class SFTModel(BaseLLM):
    def format_prompt(self, question: str) -> str:
        return plain_question(question)


def tokenize(tokenizer, prompt: str, completion: str, untrained: list[tuple[int, int]] = ()) -> dict:
    """Prompt and completion are tokenized apart and joined, so the prompt's tokens are exactly those the
    model sees at test time. Labels are -100 on the prompt: only the completion (and EOS) is learned.

    untrained: (start, end) spans of the completion that are not learned either (the results a calculator writes,
    `calculator.written_spans`); each is tokenized on its own, as the calculator's tokens are."""
    prompt_ids = tokenizer(prompt)["input_ids"]
    cuts = [0, *(i for span in untrained for i in span), len(completion)]
    input_ids, labels = list(prompt_ids), [-100] * len(prompt_ids)
    for k, (start, end) in enumerate(zip(cuts, cuts[1:])):
        ids = tokenizer(completion[start:end], add_special_tokens=False)["input_ids"] if end > start else []
        input_ids += ids
        labels += [-100] * len(ids) if k % 2 else ids  # the odd pieces are the untrained spans
    return {"input_ids": input_ids + [tokenizer.eos_token_id], "labels": labels + [tokenizer.eos_token_id]}


def collate(examples: list[dict], pad_token_id: int, pad_to: int | None = None) -> dict:
    """Right-pad to the longest example in the batch (or to `pad_to`); padding gets label -100.

    With dynamic padding, the logits (a 49k-wide matmul per token) are computed only for the last
    positions, from the end of the shortest prompt on: every earlier label is -100 anyway. The labels
    are cut to the same positions, so the loss is unchanged. `pad_to` is the plain baseline: all logits."""
    length = pad_to or max(len(e["input_ids"]) for e in examples)
    batch = {"input_ids": [], "labels": [], "attention_mask": []}
    for e in examples:
        pad = length - len(e["input_ids"])
        batch["input_ids"].append(e["input_ids"] + [pad_token_id] * pad)
        batch["labels"].append(e["labels"] + [-100] * pad)
        batch["attention_mask"].append([1] * len(e["input_ids"]) + [0] * pad)
    batch = {k: torch.tensor(v) for k, v in batch.items()}
    if pad_to is None:
        # the first label is predicted from the position just before it, hence the -1
        first_label = min(next(i for i, label in enumerate(e["labels"]) if label != -100) for e in examples)
        start = max(first_label - 1, 0)
        batch["logits_to_keep"] = positions(start, length)
        batch["labels"] = batch["labels"][:, start:]
    return batch


def lora_rank(model, budget_bytes: float = 20e6, largest: int = 32) -> int:
    """The largest power-of-two rank (up to `largest`) whose all-linear adapter, saved in bf16, fits the
    budget: 32 for the 135M model (19.6 MB), 16 for the 360M one (17.4 MB), 8 for the 1.7B one."""
    linears = [m for name, m in model.named_modules() if isinstance(m, torch.nn.Linear) and not name.endswith("lm_head")]
    per_rank = 2 * sum(m.in_features + m.out_features for m in linears)  # A is r x in, B is out x r; bf16
    rank = largest
    while rank > 1 and rank * per_rank > budget_bytes:
        rank //= 2
    return rank


def train_model(
    examples: list[tuple],  # (prompt, completion) or (prompt, completion, untrained spans): see tokenize
    output_dir: str | Path,
    checkpoint: str = loader.DEFAULT_CHECKPOINT,
    lora_r: int | None = None,  # None: the largest that keeps the adapter under 20 MB (lora_rank)
    lora_alpha: int | None = None,  # None: 4 x lora_r
    lora_dropout: float = 0.0,
    learning_rate: float = 5e-4,  # 135M model, one run each: 2e-3 diverged (0.11), 1e-3 0.39, 5e-4 0.43, 2.5e-4 0.29
    epochs: float = 6,
    batch_size: int = 8,  # more, smaller steps: 750 updates in 6 epochs of 1000 examples
    max_steps: int = -1,
    pad_to: int | None = None,  # pad every batch to this length instead of the longest example (benchmarks only)
    seed: int = 0,
    model=None,
    tokenizer=None,
    llm: BaseLLM | None = None,
    init_adapter: str | Path | None = None,
):
    """LoRA-train on (prompt, completion) pairs; save only the adapter to output_dir. Trains `llm` (e.g. an
    RFTModel already built), else a BaseLLM around model/tokenizer or the checkpoint. Returns that llm, now
    holding the trained PeftModel, and the Trainer. init_adapter: train on from that saved adapter (its rank
    and alpha) instead of a fresh LoRA."""
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import Trainer, TrainingArguments

    policy = loader.policy()
    llm = llm or BaseLLM(checkpoint, model=model, tokenizer=tokenizer, dtype=policy.train_dtype)
    if init_adapter:
        peft_model = PeftModel.from_pretrained(llm.model, require_adapter(init_adapter), is_trainable=True)
    else:
        lora_r = lora_r or lora_rank(llm.model)
        config = LoraConfig(r=lora_r, lora_alpha=lora_alpha or 4 * lora_r, lora_dropout=lora_dropout, target_modules="all-linear", bias="none", task_type="CAUSAL_LM")
        peft_model = get_peft_model(llm.model, config)
    peft_model.print_trainable_parameters()
    if policy.gradient_checkpointing:
        peft_model.enable_input_require_grads()  # gradient checkpointing needs inputs that require grad
    data = [tokenize(llm.tokenizer, *example) for example in examples]
    output_dir = Path(output_dir)
    # Batches of similar lengths: with dynamic padding, one long rationale would otherwise pad a whole batch.
    fields = inspect.signature(TrainingArguments.__init__).parameters
    grouping = {"train_sampling_strategy": "group_by_length"} if "train_sampling_strategy" in fields else {"group_by_length": True}
    args = TrainingArguments(
        output_dir=str(output_dir),  # tensorboard logs go to output_dir/runs (transformers 5 has no logging_dir)
        report_to="tensorboard",
        per_device_train_batch_size=batch_size,
        num_train_epochs=epochs,
        max_steps=max_steps,
        learning_rate=learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=0.05,  # a fraction of all steps
        logging_steps=10,
        save_strategy="no",  # only the final adapter is kept
        gradient_checkpointing=policy.gradient_checkpointing,
        **policy.trainer_flags,  # bf16 or fp16 autocast (fp32 master weights) where the device has it; CPU: use_cpu
        seed=seed,
        dataloader_pin_memory=llm.device.type == "cuda",
        disable_tqdm=False,
        **grouping,
    )
    trainer = Trainer(
        model=peft_model,
        args=args,
        train_dataset=data,
        data_collator=lambda batch: collate(batch, llm.tokenizer.pad_token_id, pad_to),
    )
    trainer.train()
    if trainer.args.world_size > 1:  # one line per process: each rank trained its share
        print(f"rank {trainer.args.process_index} of {trainer.args.world_size}: {trainer.state.global_step} steps", flush=True)
    peft_model.eval()
    if trainer.is_world_process_zero():
        save_adapter(peft_model, output_dir)
    llm.model = peft_model
    return llm, trainer


def save_adapter(peft_model, output_dir: Path):
    """Save the LoRA weights in bf16 (half the size). The weights in memory are rounded to bf16 too, so
    the model we evaluate now is exactly the one that will be reloaded."""
    lora = [p for n, p in peft_model.named_parameters() if "lora_" in n]
    dtype = lora[0].dtype
    for p in lora:
        p.data = p.data.to(torch.bfloat16)
    output_dir.mkdir(parents=True, exist_ok=True)
    # Written beside the target, then each file renamed into place: a kill leaves the old adapter or the new one's
    # whole files, never a truncated one (the tensorboard logs already in output_dir stay)
    with tempfile.TemporaryDirectory(prefix=f".{output_dir.name}-", dir=output_dir.parent) as tmp:
        peft_model.save_pretrained(tmp, save_embedding_layers=False)  # LoRA only; skips a base-config lookup
        (Path(tmp) / "README.md").unlink(missing_ok=True)  # PEFT's empty model card
        for file in sorted(Path(tmp).iterdir(), key=lambda f: f.name == "adapter_config.json"):  # the config last
            os.replace(file, output_dir / file.name)
    for p in lora:
        p.data = p.data.to(dtype)
    for leftover in output_dir.glob("checkpoint-*"):
        shutil.rmtree(leftover)


def require_adapter(path: str | Path) -> Path:
    """`path` as a Path if it holds a saved adapter, else a one-line error."""
    path = Path(path)
    if not (path / "adapter_config.json").is_file():
        raise loader.CheckpointError(f"no adapter in {path} (adapter_config.json missing): train one first")
    return path


def load_adapter(path: str | Path, model_class=BaseLLM, merge: bool = True, **kwargs) -> BaseLLM:
    """A model_class (made with `kwargs`) holding the base model the adapter in `path` records, with the adapter loaded
    and, for inference, merged into the base weights (unmerged, every linear layer runs its LoRA as extra small ops at
    every decode step; see docs/PERFORMANCE.md), then quantized if the policy says so (`loader.quantized`)."""
    from peft import PeftConfig, PeftModel

    path = require_adapter(path)
    base = PeftConfig.from_pretrained(path).base_model_name_or_path
    llm = model_class(base, quantize=False, **kwargs)  # int8 layers take no LoRA: quantized after the merge
    if llm.model.name_or_path != base:
        raise loader.CheckpointError(f"the adapter in {path} was trained on {base}, but the base model loaded is {llm.model.name_or_path}")
    try:
        llm.model = PeftModel.from_pretrained(llm.model, path).eval()
        if merge:
            llm.model = loader.quantized(llm.model.merge_and_unload())
    except RuntimeError as e:  # shape mismatch: a base model of another size under the same name
        raise loader.CheckpointError(f"the adapter in {path} does not fit the base model {base}: {str(e).splitlines()[0]}") from None
    return llm


def load(path: str | Path = MODEL_DIR) -> SFTModel:
    return load_adapter(path, SFTModel)


def check_training_flags(batch_size, epochs, learning_rate, max_steps, lora_r=None, rounds=1, max_question=0):
    """A one-line CheckpointError for values the Trainer would take only to fail or train nothing, before a model loads."""
    count = loader.is_count

    def number(x, least, strictly):
        return isinstance(x, (int, float)) and not isinstance(x, bool) and (x > least if strictly else x >= least)

    bad = [f"--{name} {value!r} ({want})" for name, value, ok, want in [
        ("batch_size", batch_size, count(batch_size, 1), "a count of 1 or more"),
        ("epochs", epochs, number(epochs, 0, strictly=True), "more than 0"),
        ("learning_rate", learning_rate, number(learning_rate, 0, strictly=False), "0 or more"),
        ("max_steps", max_steps, max_steps == -1 or count(max_steps, 1), "-1 for none, or 1 or more"),
        ("lora_r", lora_r, lora_r is None or count(lora_r, 1), "1 or more"),
        ("rounds", rounds, count(rounds, 1), "1 or more"),
        ("max_question", max_question, count(max_question, 0), "0 for none, or more"),
    ] if not ok]
    if bad:
        raise loader.CheckpointError("bad values: " + "; ".join(bad))


def train(
    output_dir: str = str(MODEL_DIR),
    max_question: int = 100,  # valid questions to evaluate on afterwards (0: none)
    checkpoint: str = loader.DEFAULT_CHECKPOINT,
    lora_r: int | None = None,  # None: the largest that keeps the adapter under 20 MB
    lora_alpha: int | None = None,  # None: 4 x lora_r
    lora_dropout: float = 0.0,
    learning_rate: float = 5e-4,
    epochs: float = 2,
    batch_size: int = 8,
    max_steps: int = -1,  # > 0: stop after this many steps (a quick run)
    seed: int = 0,
    more_wordings: int = 6,  # each training question also asked this many times with another quantity (units.reword)
):
    """Train on the training set (each question also with `more_wordings` other quantities), save the adapter,
    then print the accuracy on the first max_question valid questions."""
    check_training_flags(batch_size, epochs, learning_rate, max_steps, lora_r, max_question=max_question)
    rows = Dataset("train").data
    rows = rows + reword(rows, seed, more_wordings)  # none when more_wordings is 0
    examples = [(plain_question(q), answer_text(a)) for q, a in rows]
    llm = SFTModel(checkpoint, dtype=loader.policy().train_dtype)
    llm, trainer = train_model(examples, output_dir, checkpoint, lora_r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
                               learning_rate=learning_rate, epochs=epochs, batch_size=batch_size, max_steps=max_steps, seed=seed, llm=llm)
    if max_question and trainer.is_world_process_zero():
        evaluate(llm, max_question)


def test(path: str = str(MODEL_DIR), max_question: int = 100, split: str = "valid"):
    evaluate(load(path), max_question, split)


def ask(question: str, path: str = str(MODEL_DIR), show_prompt: bool = False):
    question = checked_question(question)  # before the model loads
    ask_model(load(path), question, show_prompt)


def show_tokens(tokenizer, prompt: str, completion: str):
    """Print an example token by token; [brackets] mark the tokens the loss is computed on."""
    example = tokenize(tokenizer, prompt, completion)
    pieces = [tokenizer.decode([t]) for t in example["input_ids"]]
    print("".join(f"[{p}]" if label != -100 else p for p, label in zip(pieces, example["labels"])))


def show(index: int = 0, checkpoint: str = loader.DEFAULT_CHECKPOINT):
    """Print training example `index` as the model sees it, token by token; [brackets] mark the tokens the loss is computed on."""
    from transformers import AutoTokenizer

    question, answer = Dataset("train")[index]
    print(f"question: {question}")
    show_tokens(AutoTokenizer.from_pretrained(loader.resolve(checkpoint)[0]), plain_question(question), answer_text(answer))


if __name__ == "__main__":
    loader.cli({"train": train, "test": test, "ask": ask, "show": show})
