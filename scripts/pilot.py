"""A pilot of a reasoning form and prompt: train the RFT model on rows written in that form, then score it.

    python scripts/pilot.py --form rounded                      # the recipe's form and prompt: the question alone
    python scripts/pilot.py --form rounded --worked_row         # one worked training row of the pair, then the question
    python scripts/pilot.py --form steps                        # `steps` below
    python scripts/pilot.py --form plain --init_adapter homework/sft_model   # on the SFT adapter, merged

The rows are our generator's questions at quantities of every digit length (generator.spread), each written at the
true factor: this measures how well a form is learned, not how often sampling finds it. One line per split.
docs/RECIPE.md gives the figures of each pilot run.
"""
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from homework import adapters, loader, rft, sft, training  # noqa: E402
from homework.cli import cli  # noqa: E402
from homework.data import Dataset  # noqa: E402
from homework.units import rationale  # noqa: E402
from homework.evaluation import evaluate  # noqa: E402
from homework.units.generator import spread  # noqa: E402
from homework.units.reader import read_question  # noqa: E402
from homework.sft import plain_question  # noqa: E402


FACTOR_DIGITS = 3


def scientific(x: float, digits: int | None = None) -> tuple[int, int]:
    """(m, e) with x = m * 10**e, m a whole number without trailing zeros; x rounded to `digits` significant digits
    first if given. scientific(7.2) = (72, -1), scientific(250) = (25, 1), scientific(1.609344, 3) = (161, -2)."""
    exact = Decimal(f"{x:.{digits}g}" if digits else repr(float(x))).normalize()
    sign, figures, exponent = exact.as_tuple()
    return int("".join(map(str, figures))), int(exponent)


def sci(m: int, e: int) -> str:
    return f"{m}e{e}"


def product_steps(a: int, b: int) -> str:
    """`a * b = ...` down to the product: one digit's partial products, added one at a time."""
    if min(a, b) < 10:
        return f"{a} * {b} = {a * b}"
    split, other = (a, b) if sum(d != "0" for d in str(a)) <= sum(d != "0" for d in str(b)) else (b, a)
    places = [int(d) * 10**i for i, d in enumerate(reversed(str(split))) if d != "0"][::-1]
    text = f"{a} * {b} = " + " + ".join(f"{other} * {p}" for p in places)
    partial = [other * p for p in places]
    if len(partial) > 1:
        text += " = " + " + ".join(map(str, partial))
    total = partial[0]
    for k, p in enumerate(partial[1:], 1):
        total += p
        text += f" = {total}" + "".join(f" + {q}" for q in partial[k + 1 :])
    return text


def steps(n: float, src: str, dst: str, factor: float) -> str:
    """The rationale for n src in dst at `factor` (how many dst make one src), src and dst as the reader names them."""
    (a, ea), (b, eb) = scientific(n), scientific(factor, FACTOR_DIGITS)
    answer = sci(a * b, ea + eb)
    return (
        f"1 {src} = {sci(b, eb)} {dst}. {sci(a, ea)} * {sci(b, eb)}. {product_steps(a, b)}. "
        f"{ea} + {eb} = {ea + eb}. <answer>{answer}</answer>"
    )


rationale.FORMS.update(steps=steps)  # `--form steps`: rationale.write and holds know it


class WorkedRow(rft.RFTModel):
    """The prompt of the worked-row runs (docs/RECIPE.md): the first training row of the question's pair at another
    quantity, worked in rationale.FORM ("Convert 4 mile to kilometer. 1 mile = 1.61 kilometer. 4 * 1.61 = 6.44.
    <answer>6.44</answer>"), then the question as SFT asks it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.rows = {}  # unit pair -> its training rows: (quantity, question, answer)
        for question, answer in Dataset("train").data:
            reading = read_question(question)
            if reading is not None and reading.n:
                self.rows.setdefault(reading.units, []).append((reading.n, question, answer))

    def format_prompt(self, question: str) -> str:
        reading = read_question(question)
        for n, row, answer in self.rows.get(reading.units, []) if reading else []:
            if n != reading.n:
                worked = rationale.write(read_question(row), answer / n)
                return f"{plain_question(row)} {worked}\n{plain_question(question)}"
        return plain_question(question)


def main(form: str = "plain", worked_row: bool = False, rows: int = 1500, epochs: float = 1, learning_rate: float = 1e-3,
         seed: int = 1, checkpoint: str = loader.DEFAULT_CHECKPOINT, max_question: int = 100, output_dir: str | None = None,
         init_adapter: str | None = None):
    model_class = WorkedRow if worked_row else rft.RFTModel
    data = [[q, a, rationale.write(read_question(q), a / read_question(q).n, form)] for q, a in spread(rows, seed)]
    out = Path(output_dir or tempfile.mkdtemp(prefix=f"pilot-{form}-"))
    start = time.time()
    llm = model_class(checkpoint, dtype=loader.policy().train_dtype)
    if init_adapter:  # the adapter merged into the base weights; a new LoRA trains on top of them
        from peft import PeftModel

        llm.model = PeftModel.from_pretrained(llm.model, init_adapter).merge_and_unload()
    settings = {**training.defaults(rft.train), "learning_rate": learning_rate, "epochs": epochs, "seed": seed}
    sft.train_lora(llm, rft.examples(llm, data), out, **settings)
    trained = time.time() - start
    model = adapters.load(out, model_class)
    for split in ("offgrid", "valid"):
        result = evaluate(model, max_question, split, show_misses=3)
        print(f"pilot form={form} worked_row={worked_row} rows={rows} epochs={epochs} init={init_adapter} split={split} "
              f"accuracy={result.accuracy:.2f} train_seconds={trained:.0f} adapter={out}", flush=True)


if __name__ == "__main__":
    cli(main)
