"""LoRA adapters on disk: the rank that fits the size budget, an atomic save, and a load that merges the adapter
into its base model for inference."""

import os
import shutil
import tempfile
from pathlib import Path

import torch

from . import loader
from .settings import UsageError


def lora_rank(model, budget_bytes: float = 20e6, largest: int = 32) -> int:
    """The largest power-of-two rank (up to `largest`) whose all-linear adapter, saved in bf16, fits the
    budget: 32 for the 135M model (19.6 MB), 16 for the 360M one (17.4 MB), 8 for the 1.7B one."""
    linears = [
        m for name, m in model.named_modules() if isinstance(m, torch.nn.Linear) and not name.endswith("lm_head")
    ]
    per_rank = 2 * sum(m.in_features + m.out_features for m in linears)  # A is r x in, B is out x r; bf16
    rank = largest
    while rank > 1 and rank * per_rank > budget_bytes:
        rank //= 2
    return rank


def save(peft_model, output_dir: Path):
    """Save the LoRA weights in bf16 (half the size). The weights in memory are rounded to bf16 too, so
    the model we evaluate now is exactly the one that will be reloaded."""
    lora = [p for n, p in peft_model.named_parameters() if "lora_" in n]
    if not all(torch.isfinite(p).all() for p in lora):  # a diverged training: keep the adapter already there
        raise UsageError(f"the trained weights are not finite (the training diverged): nothing saved to "
                                     f"{output_dir}; lower --learning_rate")
    dtype = lora[0].dtype
    for p in lora:
        p.data = p.data.to(torch.bfloat16)
    output_dir.mkdir(parents=True, exist_ok=True)
    for leftover in output_dir.parent.glob(f".{output_dir.name}-*"):  # what a save killed midway left beside it
        shutil.rmtree(leftover, ignore_errors=True)
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


def require(path: str | Path) -> Path:
    """`path` as a Path if it holds a saved adapter, else a one-line error."""
    path = Path(path)
    if not (path / "adapter_config.json").is_file():
        raise loader.CheckpointError(f"no adapter in {path} (adapter_config.json missing): train one first")
    return path


def load(path: str | Path, model_class, merge: bool = True, **kwargs):
    """A model_class (made with `kwargs`) holding the base model the adapter in `path` records, with the adapter loaded
    and, for inference, merged into the base weights (unmerged, every linear layer runs its LoRA as extra small ops at
    every decode step; see docs/PERFORMANCE.md), then quantized if the policy says so (`loader.quantized`)."""
    from peft import PeftConfig, PeftModel

    path = require(path)
    base = PeftConfig.from_pretrained(path).base_model_name_or_path
    llm = model_class(base, quantize=False, **kwargs)  # int8 layers take no LoRA: quantized after the merge
    if llm.model.name_or_path != base:
        raise loader.CheckpointError(
            f"the adapter in {path} was trained on {base}, but the base model loaded is {llm.model.name_or_path}"
        )
    try:
        llm.model = PeftModel.from_pretrained(llm.model, path).eval()
        if merge:
            llm.model = loader.quantized(llm.model.merge_and_unload())
    except RuntimeError as e:  # shape mismatch: a base model of another size under the same name
        raise loader.CheckpointError(
            f"the adapter in {path} does not fit the base model {base}: {str(e).splitlines()[0]}"
        ) from None
    return llm
