"""A pilot of a reasoning form and prompt: train the RFT model on rows written in that form, then score it.

    python scripts/pilot.py --form plain --one_shot             # what the recipe ships: one worked row, then the question
    python scripts/pilot.py --form steps                        # rationale.steps, the question alone
    python scripts/pilot.py --form plain --init_adapter homework/sft_model   # on the SFT adapter, merged

The rows are our generator's questions at quantities of every digit length (generator.spread), each written at the
true factor: this measures how well a form is learned, not how often sampling finds it. One line per split.
docs/RECIPE.md gives the figures of each pilot run.
"""
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from homework import adapters, loader, rft, sft  # noqa: E402
from homework.cli import cli  # noqa: E402
from homework.units import rationale  # noqa: E402
from homework.evaluation import evaluate  # noqa: E402
from homework.units.generator import spread  # noqa: E402
from homework.units.reader import read_question  # noqa: E402
from homework.sft import plain_question  # noqa: E402


class QuestionAlone(rft.RFTModel):
    """The RFT model without the worked row: the question as SFT asks it, and nothing else."""

    def format_prompt(self, question: str) -> str:
        return plain_question(question)


def main(form: str = "plain", one_shot: bool = False, rows: int = 1500, epochs: float = 1, learning_rate: float = 1e-3,
         seed: int = 1, checkpoint: str = loader.DEFAULT_CHECKPOINT, max_question: int = 100, output_dir: str | None = None,
         init_adapter: str | None = None):
    model_class = rft.RFTModel if one_shot else QuestionAlone
    data = [[q, a, rationale.write(read_question(q), a / read_question(q).n, form)] for q, a in spread(rows, seed)]
    out = Path(output_dir or tempfile.mkdtemp(prefix=f"pilot-{form}-"))
    start = time.time()
    llm = model_class(checkpoint, dtype=loader.policy().train_dtype)
    if init_adapter:  # the adapter merged into the base weights; a new LoRA trains on top of them
        from peft import PeftModel

        llm.model = PeftModel.from_pretrained(llm.model, init_adapter).merge_and_unload()
    sft.train_lora(llm, rft.examples(llm, data), out, learning_rate=learning_rate, epochs=epochs, seed=seed)
    trained = time.time() - start
    model = adapters.load(out, model_class)
    for split in ("offgrid", "valid"):
        result = evaluate(model, max_question, split, show_misses=3)
        print(f"pilot form={form} one_shot={one_shot} rows={rows} epochs={epochs} init={init_adapter} split={split} "
              f"accuracy={result.accuracy:.2f} train_seconds={trained:.0f} adapter={out}", flush=True)


if __name__ == "__main__":
    cli(main)
