"""What the package takes from outside its code: the environment variables it reads (each read where it is used, so a
change between two calls counts), and UsageError, the one error for a bad flag, value, path or variable. The commands
print a UsageError as one line (cli.py); docs/RUNNING.md's table lists the same variables."""

import os

CHECKPOINT = "HOMEWORK_CHECKPOINT"
DATA = "HOMEWORK_DATA"
DTYPE = "HOMEWORK_DTYPE"
QUANT = "HOMEWORK_QUANT"
CACHE = "HOMEWORK_CACHE"
ENGINE = "HOMEWORK_ENGINE"
THREADS = "HOMEWORK_THREADS"
ENVIRONMENT = {
    CHECKPOINT: "the base model of every stage, over its --checkpoint: embedded, a local folder, a hub name",
    DATA: "a folder of train.json and valid.json (the course's, say) that every stage reads in place of data/",
    DTYPE: "float32 | bfloat16 | float16: the inference dtype, over the device policy's",
    QUANT: "none | int8: int8 weights for decode steps of few rows (a CPU in float32 only: its default)",
    CACHE: "where the embedded model is converted to, once (default ~/.cache/homework)",
    ENGINE: "on | off: BaseLLM generates on our engine (homework/engine), or with model.generate",
    THREADS: "adaptive | fixed: torch's threads fitted to the cores other processes leave, or left as they are",
}


class UsageError(ValueError):
    """A bad flag, value, path or environment variable: the commands print it as one line, before any work is done
    where they can. DataError (a data file) and CheckpointError (a model or an adapter) are its kinds."""


def read(name: str, choices: tuple[str, ...] | None = None) -> str | None:
    """The variable's value now, or None where it is unset or empty; with `choices`, one of them, or
    a UsageError. Any case: OFF is off."""
    value = os.environ.get(name) or None
    if value is not None and choices is not None and value.lower() not in choices:
        raise UsageError(f"{name}={value!r}: use {', '.join(choices[:-1])} or {choices[-1]}")
    return value.lower() if value is not None and choices is not None else value
