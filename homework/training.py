"""The Trainer's plumbing under sft.train_lora: batches padded to their longest example with the logits of the
prompt left out, batches grouped by length, and a stop when the loss goes NaN or infinite."""
import inspect
import math

import torch

from .loader import CheckpointError


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


def by_length(training_arguments) -> dict:
    """The TrainingArguments flag that batches examples of similar lengths (one long example pads a whole batch)."""
    if "train_sampling_strategy" in inspect.signature(training_arguments).parameters:
        return {"train_sampling_strategy": "group_by_length"}
    return {"group_by_length": True}  # transformers before 5.x


def stop_when_not_finite():
    """A TrainerCallback that ends the training at a logged loss or gradient norm that is NaN or infinite; its
    `check(output_dir)` then refuses to go on to the save."""
    from transformers import TrainerCallback

    class StopWhenNotFinite(TrainerCallback):
        diverged = None

        def on_log(self, args, state, control, logs=None, **kwargs):
            if any(not math.isfinite(logs.get(key, 0.0)) for key in ("loss", "train_loss", "grad_norm")):
                control.should_training_stop, self.diverged = True, state.global_step

        def check(self, output_dir):
            if self.diverged is not None:
                raise CheckpointError(f"the loss went NaN or infinite by step {self.diverged}: nothing saved to "
                                      f"{output_dir}; lower --learning_rate")

    return StopWhenNotFinite()


def report_ranks(args, trainer):
    """One line per process when several trained: each its share."""
    if args.world_size > 1:
        print(f"rank {args.process_index} of {args.world_size}: {trainer.state.global_step} steps", flush=True)
