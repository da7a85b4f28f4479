"""Supervised fine-tuning: LoRA on "question <answer>number</answer>", no chat template.

    python -m homework.sft train                  # trains, saves homework/sft_model, prints the accuracy
    python -m homework.sft train --help           # every flag, with its help line
    python -m homework.sft test                   # evaluates homework/sft_model (or: test PATH)
    python -m homework.sft test --split reworded  # ... on the same questions asked in other words
    python -m homework.sft ask "How many inches in 3 feet?"
    python -m homework.sft show                   # one training example, the trained tokens in [brackets]

The question is asked in one wording ("Convert 3 foot to inch." for "How many inches in 3 feet?" and "3 ft to in"),
so the model learns conversions, not sentences. Each training question is also asked with other quantities.
"""
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoTokenizer

from . import adapters, loader, training
from .base_llm import BaseLLM
from .cli import check_flags, check_training, checked_question, checked_test, cli, is_count
from .data import DataError, Dataset
from .evaluation import ask as ask_model, evaluate
from .units.generator import reword
from .units.numbers import fmt, round_answer
from .units.reader import plain_numbers, read_question
from .units.table import unit_name

MODEL_DIR = Path(__file__).resolve().parent / "sft_model"


def answer_text(answer: float) -> str:
    return f" <answer>{fmt(round_answer(answer))}</answer>"


def plain_question(question: str) -> str:
    """The question in one wording, one name per unit: "3 ft to in" becomes "Convert 3 foot to inch.". A question
    that doesn't read as a conversion is kept as written (numbers made plain)."""
    reading = read_question(question)
    if reading is None:
        return plain_numbers(question)
    src, dst = map(unit_name, reading.units)
    return f"Convert {fmt(reading.n)} {src} to {dst}."


class SFTModel(BaseLLM):
    def format_prompt(self, question: str) -> str:
        return plain_question(question)


def load(path: str | Path = MODEL_DIR) -> SFTModel:
    return adapters.load(path, SFTModel)


def tokenize(tokenizer, prompt: str, completion: str) -> dict:
    """Prompt and completion tokenized apart and joined, so the prompt's tokens are those the model sees at test time.
    Labels are -100 on the prompt: only the completion (and EOS) is learned."""
    prompt_ids = tokenizer(prompt)["input_ids"]
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return {"input_ids": prompt_ids + completion_ids, "labels": [-100] * len(prompt_ids) + completion_ids}


def collate(examples: list[dict], pad_token_id: int, pad_to: int | None = None) -> dict:
    """Right-pad to the longest example of the batch; padding gets label -100. The logits (a 49k-wide matmul a token)
    are computed only from the end of the shortest prompt on (`logits_to_keep`): every earlier label is -100.
    pad_to: every batch padded to this length, with the logits of every position (the plain baseline, for the bench)."""
    length = pad_to or max(len(e["input_ids"]) for e in examples)
    pad = [length - len(e["input_ids"]) for e in examples]
    batch = {
        "input_ids": torch.tensor([e["input_ids"] + [pad_token_id] * p for e, p in zip(examples, pad)]),
        "labels": torch.tensor([e["labels"] + [-100] * p for e, p in zip(examples, pad)]),
        "attention_mask": torch.tensor([[1] * len(e["input_ids"]) + [0] * p for e, p in zip(examples, pad)]),
    }
    if pad_to:
        return batch
    first_label = min(next(i for i, label in enumerate(e["labels"]) if label != -100) for e in examples)
    start = max(first_label - 1, 0)
    batch["labels"] = batch["labels"][:, start:]  # the first label is predicted from the position before it
    batch["logits_to_keep"] = torch.arange(start, length)
    return batch


def train_lora(llm: BaseLLM, examples: list[tuple[str, str]], output_dir: str | Path, *, learning_rate: float,
               epochs: float, batch_size: int, max_steps: int, lora_r: int | None, lora_alpha: int | None,
               lora_dropout: float, seed: int, curve_every: int = 0, data_collator=collate):
    """LoRA-train llm on (prompt, completion) pairs and save the adapter; returns the Trainer. The settings come from
    a `train` command (here, or in rft.py), whose signature holds their defaults. curve_every: score the model every
    this many steps on the first 100 valid and offgrid questions, into output_dir/curve.json.
    data_collator(examples, pad_token_id) makes a batch (collate: labels -100 on the prompt and the padding)."""
    from transformers import Trainer, TrainingArguments, set_seed  # seconds to import: not for a graded load

    set_seed(seed)  # the LoRA weights' init: the Trainer seeds only the data order, after the model is made
    rank = lora_r or adapters.lora_rank(llm.model)  # 32 for the 135M model, 16 for the 360M one: under 20 MB
    config = LoraConfig(r=rank, lora_alpha=lora_alpha or 4 * rank, lora_dropout=lora_dropout,
                        target_modules="all-linear", bias="none", task_type="CAUSAL_LM")
    model = get_peft_model(llm.model, config)
    model.print_trainable_parameters()
    policy = loader.policy()  # the device's precision and gradient checkpointing
    if policy.gradient_checkpointing:
        model.enable_input_require_grads()
    args = TrainingArguments(
        output_dir=str(output_dir),  # tensorboard logs in output_dir/runs
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
        **policy.trainer_flags,  # bf16/fp16 autocast where the device has it; use_cpu on a CPU
        seed=seed,
        dataloader_pin_memory=model.device.type == "cuda",
        include_num_input_tokens_seen="non_padding",  # for the tokens per second
        **training.by_length(TrainingArguments),  # batches of similar lengths pad less
    )
    data = [tokenize(llm.tokenizer, prompt, completion) for prompt, completion in examples]
    watch = training.stop_when_not_finite()
    curve = training.learning_curve(llm, curve_every, Path(output_dir) / "curve.json") if curve_every else None
    trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=[watch] + [curve] * bool(curve),
                      data_collator=lambda batch: data_collator(batch, llm.tokenizer.pad_token_id))
    trainer.train()
    watch.check(output_dir)  # a NaN or infinite loss: nothing is saved over the adapter there
    training.report_ranks(args, trainer)
    trainer.throughput = training.throughput(trainer, curve)
    model.eval()
    if trainer.is_world_process_zero():
        adapters.save(model, Path(output_dir))  # the LoRA weights only, in bf16
    llm.model = model
    return trainer


def train(output_dir: str = str(MODEL_DIR), max_question: int = 100, more_wordings: int = 6,
          checkpoint: str = loader.DEFAULT_CHECKPOINT, learning_rate: float = 5e-4, epochs: float = 3,
          batch_size: int = 8, max_steps: int = -1, lora_r: int | None = None, lora_alpha: int | None = None,
          lora_dropout: float = 0.0, seed: int = 0, curve_every: int = 0):
    """Train on the training set, each question also asked with other quantities, save the adapter, then print the
    accuracy on the first valid questions.

    Args:
        output_dir: where the adapter goes (tensorboard logs in output_dir/runs)
        max_question: valid questions to evaluate on afterwards (0: none)
        more_wordings: each training question also asked this many times with another quantity (generator.reword)
        curve_every: score the model every this many steps on valid and offgrid (0: never), into curve.json"""
    check_training(output_dir, learning_rate, epochs, batch_size, max_steps, lora_r, lora_dropout, seed, max_question)
    check_flags([("more_wordings", more_wordings, is_count(more_wordings, 0), "0 for none, or more"),
                 ("curve_every", curve_every, is_count(curve_every, 0), "0 for none, or more")])
    rows = Dataset("train").data
    rows = rows + reword(rows, seed, more_wordings)
    llm = SFTModel(checkpoint, dtype=loader.policy().train_dtype)
    trainer = train_lora(llm, [(plain_question(q), answer_text(a)) for q, a in rows], output_dir,
                         learning_rate=learning_rate, epochs=epochs, batch_size=batch_size, max_steps=max_steps,
                         lora_r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout, seed=seed,
                         curve_every=curve_every)
    if max_question and trainer.is_world_process_zero():
        evaluate(llm, max_question)
    return trainer.throughput


def test(path: str = str(MODEL_DIR), max_question: int = 100, split: str = "valid"):
    """Accuracy on the first max_question questions of a split, per category and kind of quantity, and the misses."""
    max_question, split = checked_test(max_question, split)  # before the model loads
    evaluate(load(path), max_question, split)


def ask(question: str, path: str = str(MODEL_DIR), show_prompt: bool = False):
    """Answer one question: what the model wrote, the parsed answer and pint's."""
    question = checked_question(question)  # before the model loads
    ask_model(load(path), question, show_prompt)


def show_tokens(tokenizer, prompt: str, completion: str):
    """Print an example token by token; [brackets] mark the tokens the loss is computed on."""
    example = tokenize(tokenizer, prompt, completion)
    pieces = [tokenizer.decode([t]) for t in example["input_ids"]]
    print("".join(f"[{p}]" if label != -100 else p for p, label in zip(pieces, example["labels"])))


def show(index: int = 0, checkpoint: str = loader.DEFAULT_CHECKPOINT):
    """Print training example `index` as the model sees it; [brackets] mark the tokens the loss is computed on."""
    rows = Dataset("train")
    if not 0 <= index < len(rows):
        raise DataError(f"the training set has {len(rows)} rows: no row {index}")
    question, answer = rows[index]
    print(f"question: {question}")
    tokenizer = AutoTokenizer.from_pretrained(loader.resolve(checkpoint)[0])
    show_tokens(tokenizer, plain_question(question), answer_text(answer))


if __name__ == "__main__":
    cli({"train": train, "test": test, "ask": ask, "show": show}, {"SFTModel.max_new_tokens": SFTModel.max_new_tokens})
