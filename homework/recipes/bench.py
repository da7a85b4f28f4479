"""Throughput, side by side. Ratios are the headline figures: our machines are noisy.

    python -m homework.recipes.bench             # sizes for the device found
    python -m homework.recipes.bench --quick     # about 2 minutes on a 2-core CPU

Writes bench/results.json and bench/tokens_per_second.png.
"""

import json
import resource
import tempfile
import time
from pathlib import Path

import torch

from .. import loader
from ..base_llm import BaseLLM, parse_answer
from ..cli import check_output_dir, cli
from ..cot import CoTModel
from ..data import Dataset, is_answer_valid

SIZES = {  # sequential prompts, batch sizes, datagen (questions, samples each), SFT steps and batch
    "quick": dict(sequential=4, batch_sizes=[4, 16], datagen=(4, 4), sft_steps=2, sft_batch=8, new_tokens=24),
    "cpu": dict(sequential=16, batch_sizes=[4, 16, 32, 64], datagen=(16, 8), sft_steps=6, sft_batch=16, new_tokens=32),
    "cuda": dict(
        sequential=32, batch_sizes=[16, 64, 256], datagen=(128, 16), sft_steps=30, sft_batch=32, new_tokens=64
    ),
}


def timed(fn):
    start = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def num_tokens(tokenizer, texts) -> int:
    return sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)


def counted(llm, fn):
    """(fn(), seconds, the prefill and decode tokens the model ran over every generation fn made): the tokens are
    a cost that two machines can compare."""
    total, generate = {"prefill": 0, "decode": 0}, llm.generate_ids

    def generate_and_count(*args, **kwargs):
        out = generate(*args, **kwargs)
        for key in total:
            total[key] += llm.tokens_processed[key]
        return out

    llm.generate_ids = generate_and_count
    try:
        out, seconds = timed(fn)
    finally:
        del llm.generate_ids  # the class's method again
    return out, seconds, total


def bench_reader(questions: list[str]) -> float:
    """Milliseconds the question reader takes a question (CoT reads the 1000 training rows at start-up)."""
    from ..units.reader import read_question

    _, seconds = timed(lambda: [read_question(q) for q in questions])
    return 1000 * seconds / len(questions)


def bench_generation(llm, questions, sequential: int, batch_sizes: list[int]) -> list[dict]:
    rows = []
    outputs, seconds, tokens = counted(llm, lambda: [llm.generate(q) for q in questions[:sequential]])
    rows.append(
        {
            "mode": "sequential",
            "batch_size": 1,
            "tok_per_s": num_tokens(llm.tokenizer, outputs) / seconds,
            "seconds": seconds,
            **tokens,
        }
    )
    for size in batch_sizes:
        llm.batch_size = size
        prompts = questions[: max(size, sequential)]
        outputs, seconds, tokens = counted(llm, lambda: llm.batched_generate(prompts))
        rows.append(
            {
                "mode": "batched",
                "batch_size": size,
                "tok_per_s": num_tokens(llm.tokenizer, outputs) / seconds,
                "seconds": seconds,
                **tokens,
            }
        )
    llm.batch_size = None
    return rows


@torch.inference_mode()
def plain_hf_samples(llm, prompts, k, temperature):
    """The baseline: HF generate with num_return_sequences, in file order, no shared prefill, no early stop."""
    size = llm.prompts_at_once(k)
    out = []
    for i in range(0, len(prompts), size):
        inputs = llm.tokenizer(prompts[i : i + size], padding=True, return_tensors="pt").to(llm.device)
        ids = llm.model.generate(
            **inputs,
            max_new_tokens=llm.max_new_tokens,
            do_sample=True,
            temperature=temperature,
            num_return_sequences=k,
            pad_token_id=llm.tokenizer.pad_token_id,
        )
        texts = llm.tokenizer.batch_decode(ids[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        out += [texts[j * k : (j + 1) * k] for j in range(len(texts) // k)]
    return out


def bench_datagen(cot, rows, k: int, temperature: float = 0.6) -> dict:
    prompts = [cot.format_prompt(q) for q, _ in rows]
    result = {}
    for name, sample in [
        ("plain_hf", lambda: plain_hf_samples(cot, prompts, k, temperature)),
        ("ours", lambda: cot.batched_generate(prompts, num_return_sequences=k, temperature=temperature)),
    ]:
        torch.manual_seed(0)
        samples, seconds = timed(sample)
        correct = sum(is_answer_valid(parse_answer(s), a) for group, (_, a) in zip(samples, rows) for s in group)
        result[name] = {
            "samples_per_s": len(rows) * k / seconds,
            "correct": correct,
            "correct_per_s": correct / seconds,
            "seconds": seconds,
        }
    result["speedup"] = result["ours"]["samples_per_s"] / result["plain_hf"]["samples_per_s"]
    return result


def bench_sft(checkpoint, steps: int, batch: int) -> dict:
    from .. import sft, training

    examples = [(q, sft.answer_text(a)) for q, a in Dataset("train").data[: steps * batch]]
    result = {}
    dynamic, fixed = sft.collate, lambda batch, pad_token_id: sft.collate(batch, pad_token_id, pad_to=128)
    for name, collate in [("dynamic", dynamic), ("fixed_128", fixed)]:
        with tempfile.TemporaryDirectory() as out:
            llm = BaseLLM(checkpoint, dtype=loader.policy().train_dtype)
            settings = {**training.defaults(sft.train), "max_steps": steps, "batch_size": batch}
            trainer = sft.train_lora(llm, examples, out, **settings, data_collator=collate)
        result[name] = {"samples_per_s": trainer.state.log_history[-1]["train_samples_per_second"]}
    result["speedup"] = result["dynamic"]["samples_per_s"] / result["fixed_128"]["samples_per_s"]
    return result


def peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KB


def plot(rows: list[dict], path: Path, device: str):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot")
        return
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for dtype in dict.fromkeys(r["dtype"] for r in rows):
        ours = [r for r in rows if r["dtype"] == dtype]
        batched = [r for r in ours if r["mode"] == "batched"]
        (line,) = ax.plot(
            [r["batch_size"] for r in batched],
            [r["tok_per_s"] for r in batched],
            "o-",
            label=f"batched_generate, {dtype}",
        )
        ax.axhline(ours[0]["tok_per_s"], color=line.get_color(), linestyle="--", label=f"one at a time, {dtype}")
    ax.set(xscale="log", xlabel="batch size", ylabel="generated tokens / s", title=f"SmolLM2 generation on {device}")
    ax.set_xticks([r["batch_size"] for r in batched], labels=[str(r["batch_size"]) for r in batched], minor=False)
    ax.minorticks_off()
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(quick: bool = False, checkpoint: str = loader.DEFAULT_CHECKPOINT, output_dir: str = "bench"):
    """Generation (fp32 weights beside the policy's model), datagen, the reader and SFT, ours beside the plain way;
    writes OUTPUT_DIR/results.json and a plot."""
    out = check_output_dir(output_dir, ("results.json", "tokens_per_second.png"))
    device = loader.policy().device
    sizes = SIZES["quick" if quick else device.type if device.type == "cuda" else "cpu"]
    valid, train = Dataset("valid").data, Dataset("train").data

    questions = [q for q, _ in valid[: max(sizes["batch_sizes"] + [sizes["sequential"]])]]
    generation = []  # fp32 weights beside the policy's model (its dtype, int8 where it says so), when that is another
    chosen = loader.policy()
    variants = {"float32": lambda: BaseLLM(checkpoint, dtype=torch.float32)}
    label = str(chosen.dtype).removeprefix("torch.") + (" + int8 decode" if chosen.quantize == "int8" else "")
    variants.setdefault(label, lambda: BaseLLM(checkpoint))  # as every stage loads it for inference
    for name, make in variants.items():
        llm = make()  # the last one (the policy's) serves the rest of the bench
        llm.max_new_tokens = sizes["new_tokens"]
        rows = [
            {**r, "dtype": name} for r in bench_generation(llm, questions, sizes["sequential"], sizes["batch_sizes"])
        ]
        best = max(r["tok_per_s"] for r in rows[1:])
        print(
            f"generation, {rows[0]['dtype']} (tokens/s):  "
            + "  ".join(f"{r['mode']} bs={r['batch_size']}: {r['tok_per_s']:.0f}" for r in rows)
        )
        print(
            "  tokens the model ran:  "
            + "  ".join(
                f"bs={r['batch_size']}: prefill={r['prefill']} decode={r['decode']} in {r['seconds']:.1f} s"
                for r in rows
            )
        )
        print(f"  batched / sequential: {best / rows[0]['tok_per_s']:.1f}x")
        generation += rows

    cot = CoTModel(checkpoint, model=llm.model, tokenizer=llm.tokenizer)  # same weights, no second load
    n, k = sizes["datagen"]
    datagen = bench_datagen(cot, train[:n], k)
    print(
        f"datagen ({n} questions x {k} samples): plain HF {datagen['plain_hf']['samples_per_s']:.1f} samples/s "
        f"({datagen['plain_hf']['correct']} correct), ours {datagen['ours']['samples_per_s']:.1f} samples/s "
        f"({datagen['ours']['correct']} correct): {datagen['speedup']:.1f}x"
    )

    reader_ms = bench_reader([q for q, _ in train])
    print(f"reader: {reader_ms:.3f} ms a question ({len(train)} training questions)")

    sft = bench_sft(checkpoint, sizes["sft_steps"], sizes["sft_batch"])
    print(
        f"SFT (samples/s): dynamic padding {sft['dynamic']['samples_per_s']:.2f}, "
        f"fixed to 128 {sft['fixed_128']['samples_per_s']:.2f}: {sft['speedup']:.1f}x"
    )

    results = {
        "device": device.type,
        "sizes": sizes,
        "generation": generation,
        "datagen": datagen,
        "sft": sft,
        "reader_ms": reader_ms,
        "peak_memory_mb": peak_memory_mb(),
    }
    print(f"peak memory: {results['peak_memory_mb']:.0f} MB")
    (out / "results.json").write_text(json.dumps(results, indent=1))
    plot(generation, out / "tokens_per_second.png", device.type)
    print(f"wrote {out / 'results.json'} and {out / 'tokens_per_second.png'}")


if __name__ == "__main__":
    cli(main)
