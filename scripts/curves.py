"""Learning curves of RFT's choices, each a fresh LoRA on datagen's samples: the form of the reasoning, and each of
the recipe's data steps (rewrite, grid, spread) on or off, on a slice of datagen's rows. docs/RECIPE.md gives the
figures.

    python scripts/curves.py --name split --form split --sampled runs/recipe/data/rft.json --max_sampled 300 \
        --grid 3 --spread 300 --epochs 2 --every 75
    python scripts/curves.py --name rewrite_only --grid 0 --spread 0 --sampled runs/recipe/data/rft.json --epochs 2

Each run writes OUTPUT/NAME/rft_train.json (what it trained on) and OUTPUT/NAME/curve.json: the first 100 valid and
offgrid questions scored every `every` steps, greedy (fp32 weights, LoRA unmerged).
"""
import json
import sys
from pathlib import Path

import fire

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from homework import rft  # noqa: E402
from homework.recipes import rft_data  # noqa: E402
from homework.units import rationale  # noqa: E402


def main(name: str, sampled: str, form: str = rationale.FORM, rewrite: bool = True, grid: int = 5, spread: int = 1200,
         epochs: float = 2, every: int = 150, learning_rate: float = 1e-3, output_dir: str = "runs/curves",
         seed: int = 0, max_steps: int = -1, max_sampled: int | None = None):
    out = Path(output_dir) / name
    out.mkdir(parents=True, exist_ok=True)
    rft.RFTModel.max_new_tokens = 128  # a 3-figure quantity split is up to about 116 tokens
    figures = rft_data.make(sampled, str(out / "rft_train.json"), form=form, grid_per_pair=grid, spread_count=spread,
                            seed=seed, rewrite_rows=rewrite, max_sampled=max_sampled, overwrite=True)
    speed = rft.train(str(out / "model"), str(out / "rft_train.json"), max_question=0, epochs=epochs,
                      learning_rate=learning_rate, curve_every=every, seed=seed, max_steps=max_steps)
    (out / "run.json").write_text(json.dumps({"form": form, "rewrite": rewrite, "grid": grid, "spread": spread,
                                              "max_sampled": max_sampled, "epochs": epochs,
                                              "learning_rate": learning_rate, "data": figures, "speed": speed}))


if __name__ == "__main__":
    fire.Fire(main)
