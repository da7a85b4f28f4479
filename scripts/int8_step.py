"""The matmuls of one decode step of SmolLM2-135M (30 layers and lm_head, random weights of its shapes, each read from
memory as in a real step), fp32 against the int8 kernel that homework/engine/quant.py uses, at 1 to 64 rows.

    python scripts/int8_step.py
"""
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo's homework/, from any folder
from homework.engine.quant import Int8Linear  # noqa: E402

LAYERS, HIDDEN, INTERMEDIATE, KV, VOCAB = 30, 576, 1536, 192, 49152
SHAPES = [(HIDDEN, HIDDEN), (KV, HIDDEN), (KV, HIDDEN), (HIDDEN, HIDDEN), (INTERMEDIATE, HIDDEN), (INTERMEDIATE, HIDDEN), (HIDDEN, INTERMEDIATE)]


def milliseconds(step, x, repeats: int = 5) -> float:
    step(x)
    start = time.perf_counter()
    for _ in range(repeats):
        step(x)
    return (time.perf_counter() - start) / repeats * 1000


@torch.inference_mode()
def main():
    torch.manual_seed(0)
    fp32 = [torch.nn.Linear(k, n, bias=False) for _ in range(LAYERS) for n, k in SHAPES] + [torch.nn.Linear(HIDDEN, VOCAB, bias=False)]
    int8 = [Int8Linear(layer) for layer in fp32]
    for layer in int8:
        del layer.fp32_weight  # only the int8 matrices, as a few-row step reads them

    def step(layers, kernel):
        def run(x):
            for layer in layers:
                kernel(layer, x if layer.in_features == HIDDEN else x.new_zeros(x.shape[0], layer.in_features))
        return run

    dense = step(fp32, lambda layer, x: layer(x))
    packed = step(int8, lambda layer, x: torch._weight_int8pack_mm(x.bfloat16(), layer.weight, layer.scale))
    print("rows   fp32 ms   int8 ms")
    for rows in (1, 2, 8, 16, 32, 64):
        x = torch.randn(rows, HIDDEN)
        print(f"{rows:4d} {milliseconds(dense, x):9.1f} {milliseconds(packed, x):9.1f}")


if __name__ == "__main__":
    main()
