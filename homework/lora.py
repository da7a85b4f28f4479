"""LoRA, the one trainer every stage uses: settings, tokenize and collate, build, train, save and load an adapter.

sft and rft are thin stages over it: each makes its (prompt, completion) examples and calls `train`. The adapter is
all-linear LoRA (`target_modules="all-linear"`), trained with the HF Trainer, tensorboard logs in the output folder.
"""
import dataclasses
import inspect
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import loader, threads
from .base_llm import BaseLLM, positions


def _help(text: str, default):
    return field(default=default, metadata={"help": text})


@dataclass(frozen=True)
class Training:
    """The training settings that sft and rft share. Each is a flag of their `train` command, with its help line
    (`command`); each stage sets its own defaults (sft.TRAINING, rft.TRAINING)."""

    checkpoint: str = _help(loader.FLAG_HELP["checkpoint"], loader.DEFAULT_CHECKPOINT)
    # 5e-4: the best for the 135M model of 2e-3 (diverged), 1e-3, 5e-4 and 2.5e-4 (SFT, docs/EXPERIMENTS.md)
    learning_rate: float = _help("peak learning rate, cosine schedule, 5% warm-up", 5e-4)
    epochs: float = _help("passes over the examples", 2)
    batch_size: int = _help("examples a step (per process)", 8)
    max_steps: int = _help("> 0: stop after this many steps (a quick run); -1: the epochs decide", -1)
    lora_r: int | None = _help("LoRA rank; none: the largest that keeps the adapter under 20 MB (lora_rank)", None)
    lora_alpha: int | None = _help("LoRA alpha; none: 4 x lora_r", None)
    lora_dropout: float = _help("dropout on the LoRA input", 0.0)
    seed: int = _help("seed of the LoRA init and the data order", 0)

    def __post_init__(self):
        """A one-line CheckpointError for values the Trainer would take only to fail or train nothing, before a model loads."""
        def number(x, least, strictly):
            return isinstance(x, (int, float)) and not isinstance(x, bool) and (x > least if strictly else x >= least)

        check_flags([
            ("batch_size", self.batch_size, loader.is_count(self.batch_size, 1), "a count of 1 or more"),
            ("epochs", self.epochs, number(self.epochs, 0, strictly=True), "more than 0"),
            ("learning_rate", self.learning_rate, number(self.learning_rate, 0, strictly=False), "0 or more"),
            ("max_steps", self.max_steps, self.max_steps == -1 or loader.is_count(self.max_steps, 1), "-1 for none, or 1 or more"),
            ("lora_r", self.lora_r, self.lora_r is None or loader.is_count(self.lora_r, 1), "1 or more"),
        ])


def check_flags(checks: list[tuple[str, object, bool, str]]):
    """One CheckpointError naming every (flag, value, ok, what it must be) that is not ok."""
    if bad := [f"--{name} {value!r} ({want})" for name, value, ok, want in checks if not ok]:
        raise loader.CheckpointError("bad values: " + "; ".join(bad))


def command(defaults: Training):
    """A stage's `train(..., training: Training)` made a command with flat flags: its own parameters, then every
    Training field with `defaults`' value, each with its help line in `--help` (Fire reads the signature and the
    docstring's Args). Python callers pass the same flags: `sft.train(max_steps=3, checkpoint="embedded")`."""
    fields = dataclasses.fields(Training)

    def wrap(function):
        own = [p for p in inspect.signature(function).parameters.values() if p.name != "training"]
        signature = inspect.Signature(own + [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=getattr(defaults, f.name),
                                                               annotation=f.type) for f in fields])

        def run(*args, **kwargs):
            flags = signature.bind(*args, **kwargs)
            flags.apply_defaults()
            settings = {f.name: flags.arguments.pop(f.name) for f in fields}
            return function(**flags.arguments, training=Training(**settings))

        run.__signature__, run.__name__, run.__qualname__, run.__module__ = signature, function.__name__, function.__qualname__, function.__module__
        run.__doc__ = (function.__doc__ or "").rstrip() + "".join(f"\n        {f.name}: {f.metadata['help']}" for f in fields)
        return run

    return wrap


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


def build(llm: BaseLLM, training: Training, init_adapter: str | Path | None = None):
    """`llm.model` wrapped in a trainable all-linear LoRA (or the saved adapter `init_adapter`, its rank and alpha)."""
    from peft import LoraConfig, PeftModel, get_peft_model

    if init_adapter:
        return PeftModel.from_pretrained(llm.model, require_adapter(init_adapter), is_trainable=True)
    rank = training.lora_r or lora_rank(llm.model)
    config = LoraConfig(r=rank, lora_alpha=training.lora_alpha or 4 * rank, lora_dropout=training.lora_dropout,
                        target_modules="all-linear", bias="none", task_type="CAUSAL_LM")
    return get_peft_model(llm.model, config)


def trainer_for(peft_model, data: list[dict], output_dir: Path, training: Training, pad_token_id: int, pad_to: int | None = None):
    """The HF Trainer over tokenized examples: cosine schedule, tensorboard logs in output_dir/runs, the precision and
    gradient checkpointing the device policy gives, batches of similar lengths (one long rationale would otherwise pad
    a whole batch)."""
    from transformers import Trainer, TrainingArguments

    policy = loader.policy()
    fields = inspect.signature(TrainingArguments.__init__).parameters
    grouping = {"train_sampling_strategy": "group_by_length"} if "train_sampling_strategy" in fields else {"group_by_length": True}
    args = TrainingArguments(
        output_dir=str(output_dir),  # tensorboard logs go to output_dir/runs (transformers 5 has no logging_dir)
        report_to="tensorboard",
        per_device_train_batch_size=training.batch_size,
        num_train_epochs=training.epochs,
        max_steps=training.max_steps,
        learning_rate=training.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=0.05,  # a fraction of all steps
        logging_steps=10,
        save_strategy="no",  # only the final adapter is kept
        gradient_checkpointing=policy.gradient_checkpointing,
        **policy.trainer_flags,  # bf16 or fp16 autocast (fp32 master weights) where the device has it; CPU: use_cpu
        seed=training.seed,
        dataloader_pin_memory=peft_model.device.type == "cuda",
        disable_tqdm=False,
        **grouping,
    )
    return Trainer(model=peft_model, args=args, train_dataset=data, data_collator=lambda batch: collate(batch, pad_token_id, pad_to))


def train(examples: list[tuple], output_dir: str | Path, training: Training = Training(), llm: BaseLLM | None = None,
          init_adapter: str | Path | None = None, pad_to: int | None = None):
    """LoRA-train on examples, (prompt, completion) or (prompt, completion, untrained spans) (see tokenize), and save
    only the adapter to output_dir. Trains `llm` (an RFTModel already built, say), else a BaseLLM of the checkpoint.
    Returns that llm, now holding the trained PeftModel, and the Trainer. pad_to: every batch padded to this length
    (benchmarks only)."""
    llm = llm or BaseLLM(training.checkpoint, dtype=loader.policy().train_dtype)
    peft_model = build(llm, training, init_adapter)
    peft_model.print_trainable_parameters()
    if loader.policy().gradient_checkpointing:
        peft_model.enable_input_require_grads()  # gradient checkpointing needs inputs that require grad
    data = [tokenize(llm.tokenizer, *example) for example in examples]
    trainer = trainer_for(peft_model, data, Path(output_dir), training, llm.tokenizer.pad_token_id, pad_to)
    trainer.train()
    if trainer.args.world_size > 1:  # one line per process: each rank trained its share
        print(f"rank {trainer.args.process_index} of {trainer.args.world_size}: {trainer.state.global_step} steps", flush=True)
    peft_model.eval()
    if trainer.is_world_process_zero():
        save_adapter(peft_model, Path(output_dir))
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
    with threads.fitted():  # fewer threads while other processes keep cores busy
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


def show_tokens(tokenizer, prompt: str, completion: str):
    """Print an example token by token; [brackets] mark the tokens the loss is computed on."""
    example = tokenize(tokenizer, prompt, completion)
    pieces = [tokenizer.decode([t]) for t in example["input_ids"]]
    print("".join(f"[{p}]" if label != -100 else p for p, label in zip(pieces, example["labels"])))
