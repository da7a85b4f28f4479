"""The GPU check, one command, about 8 minutes on one GPU; it writes a JSON report.

    python scripts/gpu_check.py --gguf /path/to/SmolLM2-135M-Instruct.Q4_1.gguf --output $OUT/report.json
    HOMEWORK_CHECKPOINT=/path/to/SmolLM2-135M-Instruct python scripts/gpu_check.py   # a converted model folder
    python scripts/gpu_check.py --cpu --tiny          # every step on a tiny random model, on the CPU (CI runs this)

Steps: the fast test suite, `bench --quick`, greedy CoT completions of 64 valid questions on the device
against the CPU in fp32, a 100-step SFT, and the grader with the course's time limits enforced. A step that
fails is recorded and the next one runs. Needs torch, transformers, peft and accelerate (and the `gguf`
package for --gguf); not fire, pint or a network.
"""
import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def prepare_model(args, work: Path) -> Path:
    """A model folder in a fresh cache, where the package finds its embedded model, then HOMEWORK_CHECKPOINT=embedded."""
    from homework import loader, settings

    usual = loader.embedded_path()
    given = os.environ.get(settings.CHECKPOINT)
    os.environ[settings.CACHE] = str(work / "cache")
    target = loader.embedded_path()
    target.parent.mkdir(parents=True)
    if args.tiny:  # a random 2-layer Llama with the real tokenizer (from the usual cache)
        from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

        tokenizer = AutoTokenizer.from_pretrained(usual)
        config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                             num_attention_heads=2, num_key_value_heads=1, bos_token_id=tokenizer.bos_token_id,
                             eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True)
        LlamaForCausalLM(config).save_pretrained(target)
        tokenizer.save_pretrained(target)
    elif args.gguf:
        loader.convert_gguf(Path(args.gguf), target)
    elif given and Path(given).is_dir():
        target.symlink_to(Path(given).resolve(), target_is_directory=True)
    else:
        sys.exit("error: give --gguf PATH, HOMEWORK_CHECKPOINT=/path/to/model_folder, or --tiny")
    os.environ[settings.CHECKPOINT] = "embedded"
    return target


def run_tests(args) -> dict:
    selection = ["tests/test_parse.py"] if args.tiny else []  # tiny: a smoke test of this step; the suite runs the rest
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "not slow", "-p", "no:cacheprovider", *selection],
                            cwd=ROOT, capture_output=True, text=True)
    summary = (result.stdout.strip().splitlines() or [""])[-1]
    counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|skipped|error)", summary)}
    return {"ok": result.returncode == 0, "summary": summary, **counts, "tail": result.stdout[-3000:] if result.returncode else ""}


def run_bench(work: Path) -> dict:
    from homework.recipes import bench

    bench.main(quick=True, checkpoint="embedded", output_dir=str(work / "bench"))
    return {"ok": True, **json.loads((work / "bench" / "results.json").read_text())}


def compare_with_cpu(count: int) -> dict:
    """Greedy CoT completions on the device (the policy's dtype) and on the CPU (fp32): how many match."""
    import torch

    from homework import loader
    from homework.engine import quant
    from homework.cot import CoTModel
    from homework.data import Dataset

    questions = [q for q, _ in Dataset("valid").data[:count]]
    device_model = CoTModel("embedded")
    cpu_model = CoTModel(model=loader.load("embedded", torch.float32)[0], tokenizer=device_model.tokenizer)
    cpu_model.model, cpu_model.device = cpu_model.model.to("cpu"), torch.device("cpu")
    start = time.perf_counter()
    on_device = device_model.batched_generate([device_model.format_prompt(q) for q in questions])
    device_seconds = time.perf_counter() - start
    on_cpu = cpu_model.batched_generate([cpu_model.format_prompt(q) for q in questions])
    matches = sum(a == b for a, b in zip(on_device, on_cpu))
    answers_match = sum(device_model.parse_answer(a) == cpu_model.parse_answer(b) or a == b for a, b in zip(on_device, on_cpu))
    int8 = any(isinstance(m, quant.Int8Linear) for m in device_model.model.modules())  # a CPU in fp32: the policy's int8 steps
    return {"ok": True, "device": str(device_model.device), "dtype": str(device_model.model.dtype), "int8": int8, "questions": count,
            "identical_completions": matches, "identical_answers": answers_match, "device_seconds": device_seconds,
            "first_differences": [[q, a, b] for q, a, b in zip(questions, on_device, on_cpu) if a != b][:3]}


def run_sft(work: Path, steps: int) -> dict:
    from homework import loader, sft, training
    from homework.base_llm import BaseLLM
    from homework.data import Dataset

    examples = [(q, sft.answer_text(a)) for q, a in Dataset("train").data[: steps * 8]]
    llm = BaseLLM("embedded", dtype=loader.policy().train_dtype)
    trainer = sft.train_lora(llm, examples, work / "sft", **{**training.defaults(sft.train), "max_steps": steps})
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    final = trainer.state.log_history[-1]
    return {"ok": len(losses) > 1 and losses[-1] < losses[0], "steps": steps, "first_loss": losses[0] if losses else None,
            "last_loss": losses[-1] if losses else None, "seconds": final.get("train_runtime"),
            "samples_per_second": final.get("train_samples_per_second")}


def run_grader(args) -> dict:
    command = [sys.executable, "-m", "grader", "homework", "--enforce_timeouts", "--disable_color"]
    result = subprocess.run(command + (["--max_question", "1"] if args.tiny else []), cwd=ROOT, capture_output=True, text=True)
    lines = result.stdout.strip().splitlines()
    return {"ok": result.returncode == 0 and bool(lines) and lines[-1].startswith("Total"), "report": lines, "stderr": result.stderr[-2000:]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gguf", help="the SmolLM2-135M-Instruct GGUF file (needs the gguf package)")
    parser.add_argument("--cpu", action="store_true", help="hide any GPU: the same steps on the CPU")
    parser.add_argument("--tiny", action="store_true", help="a tiny random model and few questions: a smoke test of this script")
    parser.add_argument("--output", default=str(ROOT / "gpu" / "report.json"))
    args = parser.parse_args(argv)
    if args.cpu:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    sys.path.insert(0, str(ROOT))
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    prepare_model(args, work)

    import torch

    report = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.cuda.is_available(),
              "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, "tiny": args.tiny, "steps": {}}
    steps = [("tests", lambda: run_tests(args)), ("bench_quick", lambda: run_bench(work)),
             ("greedy_device_vs_cpu", lambda: compare_with_cpu(8 if args.tiny else 64)),
             ("sft", lambda: run_sft(work, 20 if args.tiny else 100)), ("grader_enforced", lambda: run_grader(args))]
    for name, step in steps:
        start = time.perf_counter()
        try:
            result = step()
        except Exception as e:
            result = {"ok": False, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-3000:]}
        result["wall_seconds"] = round(time.perf_counter() - start, 1)
        report["steps"][name] = result
        print(f"gpu_check: {name:<22} {'ok' if result['ok'] else 'FAILED'}  ({result['wall_seconds']:.0f} s)", flush=True)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=1, default=str))
    shutil.rmtree(work, ignore_errors=True)
    print(f"gpu_check: report in {output}")
    return 0 if all(step["ok"] for step in report["steps"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
