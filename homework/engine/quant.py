"""Weight-only int8 for decoding on a CPU in fp32 (`loader.policy()` decides, `HOMEWORK_QUANT=none` turns it off).

A decode step of few rows is memory-bound: it reads every weight once for little arithmetic. In fp32 that is 540 MB a
step for the 135M model, in int8 135 MB. `Int8Linear` keeps each weight in int8 (one scale per output channel) beside
its fp32 original, shared with the layer it replaces (the 135M model takes 540 + 135 MB), and
    - runs a decode step (one position per row) of at most DECODE_ROWS rows through torch's int8 kernel
      (`_weight_int8pack_mm`, whose activations are bf16);
    - runs everything else (a prefill, a step of many rows) as the fp32 layer it replaces, whose weight it keeps.
So a row's arithmetic depends on how many rows share its step, as it does on its padding in bf16. The int8 entries
are each one of 255 levels of their channel's largest.
"""

import torch
from torch import nn

MIN_IN_FEATURES_MULTIPLE = (
    16  # the CPU kernel sums wrong below a multiple of 8, and crashes the process at 24, 40 or 120
)
# The 30 layers and lm_head of a decode step, 2-core AVX2 CPU (scripts/int8_step.py, docs/PERFORMANCE.md): 1 / 8 / 16 /
# 64 rows took 31 / 56 / 119 / 424 ms in int8 against 93 / 139 / 184 / 359 ms in fp32. A lone row (`generate`) gains
# most. With every decode step in int8 the CoT case was no faster (137 s against 132 s) and less accurate (valid 0.50
# -> 0.47, reworded 0.47 -> 0.45): most of its steps run 64 rows. So only the few-row steps (a lone row, a batch's
# last rows) take the kernel.
DECODE_ROWS = 8


class Int8Linear(nn.Module):
    def __init__(self, linear: nn.Linear):
        super().__init__()
        weight = linear.weight.detach().float()
        # the kernel takes bf16 scales: round the scale to bf16 first and quantize with that one, so the stored
        # scale is exact and each entry is off by at most half a level
        scale = (weight.abs().amax(dim=1).clamp(min=1e-12) / 127).bfloat16()
        self.register_buffer("weight", torch.round(weight / scale.float()[:, None]).clamp(-127, 127).to(torch.int8))
        self.register_buffer("scale", scale)
        # the fp32 weight for the rest. Where the prefill ran on the int8 weights dequantized, CoT lost as much accuracy
        # as with every step in int8 (reworded 0.47 -> 0.45): the few-row steps alone keep it (docs/PERFORMANCE.md)
        self.register_buffer(
            "fp32_weight", weight, persistent=False
        )  # shared, not copied: lm_head's is the embedding's
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().float().clone())
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3 and x.shape[1] == 1 and x.shape[0] <= DECODE_ROWS:  # a decode step of few rows
            y = torch._weight_int8pack_mm(
                x.reshape(-1, self.in_features).bfloat16().contiguous(), self.weight, self.scale
            )
            y = y.to(x.dtype).reshape(*x.shape[:-1], self.out_features)
            return y if self.bias is None else y + self.bias.to(x.dtype)
        return nn.functional.linear(
            x, self.fp32_weight.to(x.dtype), None if self.bias is None else self.bias.to(x.dtype)
        )

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 weights"


def quantizable(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) and module.in_features % MIN_IN_FEATURES_MULTIPLE == 0


def quantize(model: nn.Module) -> nn.Module:
    """Every Linear layer the kernel can take, lm_head included, as an Int8Linear, in place. lm_head shares its weight
    with the input embedding, which stays fp32: the int8 copy is lm_head's alone. For inference only (the int8 layers
    take no gradient and no LoRA: merge an adapter first)."""
    names = [name for name, module in model.named_modules() if quantizable(module)]
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, Int8Linear(getattr(parent, child)))
    if hasattr(model, "config"):
        model.config.tie_word_embeddings = False  # lm_head is no longer the embedding's matrix
    return model
