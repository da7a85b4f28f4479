"""The Trainer's plumbing under sft.train_lora: batches grouped by length, a stop when the loss goes NaN or infinite,
learning curves and the training speed."""
import inspect
import math
import time

import torch

from .settings import UsageError


FLAGS = ("learning_rate", "epochs", "batch_size", "max_steps", "lora_r", "lora_alpha", "lora_dropout", "seed")


def defaults(train) -> dict:
    """A `train` command's (sft.train, rft.train) training flags at their defaults: what sft.train_lora takes."""
    parameters = inspect.signature(train).parameters
    return {name: parameters[name].default for name in FLAGS}


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
                raise UsageError(f"the loss went NaN or infinite by step {self.diverged}: nothing saved to "
                                      f"{output_dir}; lower --learning_rate")

    return StopWhenNotFinite()


def report_ranks(args, trainer):
    """One line per process when several trained: each its share."""
    if args.world_size > 1:
        print(f"rank {args.process_index} of {args.world_size}: {trainer.state.global_step} steps", flush=True)


def learning_curve(llm, every: int, path, questions: int = 100, splits: tuple = ("valid", "offgrid")):
    """A TrainerCallback that scores `llm` (the model in training: fp32, its LoRA unmerged) every `every` steps and
    at the end, greedy, on the first `questions` of each split, and writes the points to `path` as they come:
    [{"step", "epoch", "valid", "offgrid"}]. A learning curve: where accuracy stops rising, more training stops
    paying."""
    from transformers import TrainerCallback

    from .data import Dataset, benchmark, write_json

    class LearningCurve(TrainerCallback):
        points, seconds = [], 0.0  # the points, and the seconds spent scoring (not training)

        def score(self, state, model):
            start = time.perf_counter()
            model.eval()
            point = {"step": state.global_step, "epoch": round(state.epoch or 0, 3)}
            for split in splits:
                point[split] = round(benchmark(llm, Dataset(split), questions).accuracy, 3)
            self.points.append(point)
            write_json(path, self.points)
            print(f"curve: {point}", flush=True)
            model.train()
            self.seconds += time.perf_counter() - start

        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step % every == 0 or state.global_step == state.max_steps:
                self.score(state, model)

    return LearningCurve()


def throughput(trainer, curve=None) -> dict:
    """Training tokens (padding left out) per second, the learning curve's scoring time left out."""
    seconds = trainer.state.log_history[-1].get("train_runtime", 0.0) - (curve.seconds if curve else 0.0)
    tokens = trainer.state.num_input_tokens_seen
    # A token's matmuls: forward 2 flops a weight, backward 2 more for the input's gradient (the base weights get none)
    linear = sum(m.weight.numel() for name, m in trainer.model.named_modules()
                 if isinstance(m, torch.nn.Linear) and "lora_" not in name and not name.endswith("lm_head"))
    figures = {"tokens": tokens, "seconds": round(seconds, 1), "tokens_per_second": round(tokens / max(seconds, 1e-9)),
               "gflop_per_token": round(4 * linear / 1e9, 3)}
    print(f"trained on {tokens} tokens in {seconds:.0f} s: {figures['tokens_per_second']} tokens/s", flush=True)
    return figures
