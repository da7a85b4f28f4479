"""The commands' plumbing: fire.Fire with our errors printed as one line, unknown flags refused before a command
starts, flags checked before a model loads, and every flag's help line in `--help`."""

import inspect
import math
import sys
import tempfile
from pathlib import Path

from .data import Dataset
from .settings import ENVIRONMENT, UsageError


def flag_name(arg: str) -> str | None:
    """The parameter a `--flag`, `-flag` or `--flag=value` names (dashes as underscores), or None for a value (`-1`)."""
    body = arg.lstrip("-")
    return body.split("=", 1)[0].replace("-", "_") if arg.startswith("-") and (body[:1].isalpha() or body[:1] == "_") \
        else None


def bad_args(function, args: list[str]) -> str | None:
    """Why Fire must not run `function` on `args`, or None. Fire passes a flag or a value it can't bind to what the
    command returned, and complains only after the command has run (a whole training run), and it takes any value
    for a boolean (`--quick=nope` is true). So, as Fire reads them: `--name value`, `--name=value`, `-name` and `-n`
    (one letter: the one parameter it begins), `--noname` for a boolean; the values left over fill the parameters
    not named, in order."""
    parameters = inspect.signature(function).parameters
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return None
    named, values, i = set(), [], 0
    args = args[: args.index("--")] if "--" in args else args  # after a lone --, Fire's own flags
    while i < len(args):
        arg, i = args[i], i + 1
        if (name := flag_name(arg)) is None:
            values.append(arg)
            continue
        if name == "help" or arg == "-h":
            return None
        if len(name) == 1 and len((matches := [p for p in parameters if p.startswith(name)])) == 1:
            name = matches[0]
        boolean = name in parameters and isinstance(parameters[name].default, bool)
        if name not in parameters and name.startswith("no") and isinstance(
                getattr(parameters.get(name[2:]), "default", None), bool):
            named.add(name[2:])
            continue
        if name not in parameters:
            return f"takes no {arg.split('=', 1)[0]}"
        named.add(name)
        if "=" in arg:
            value = arg.split("=", 1)[1]
        elif i < len(args) and flag_name(args[i]) is None:
            value, i = args[i], i + 1
        else:
            value = None  # a flag alone: True
        if boolean and value not in (None, "True", "False"):
            return f"--{name} {value!r}: a switch is --{name}, --no{name}, or --{name}=True or False"
    free = [p for name, p in parameters.items() if name not in named and p.kind is not p.VAR_KEYWORD]
    if not any(p.kind is p.VAR_POSITIONAL for p in free) and len(values) > len(free):
        return f"takes no {' '.join(values[len(free):])!r} (too many values)"
    return None


def is_count(x, least: int = 1) -> bool:
    """An int (not a bool, which Fire makes of `--flag`) of at least `least`: what a count flag must be."""
    return isinstance(x, int) and not isinstance(x, bool) and x >= least


# The help line of each flag the stages share, for `--help` (a command's own docstring Args come first)
FLAG_HELP = {
    "question": "the question, in any wording",
    "path": "the adapter folder",
    "max_question": "how many questions, from the start of the split",
    "split": "the data set: valid, reworded, offgrid or train (data/<split>.json, or in $HOMEWORK_DATA)",
    "calculator": "the decoder writes each product the model sets up (a * b =); off: the pure model, as graded",
    "checkpoint": "the base model: a hub name, a local folder, or embedded",
    "show_prompt": "print the prompt the model sees",
    "index": "which training row",
    "quick": "a few questions and steps: minutes on a CPU",
    "output_dir": "where the results go",
    "learning_rate": "peak learning rate, cosine schedule, 5% warm-up",
    "epochs": "passes over the examples",
    "batch_size": "examples a step (per process)",
    "max_steps": "> 0: stop after this many steps (a quick run); -1: the epochs decide",
    "lora_r": "LoRA rank; none: the largest that keeps the adapter under 20 MB",
    "lora_alpha": "LoRA alpha; none: 4 x lora_r",
    "lora_dropout": "dropout on the LoRA input, from 0 to below 1",
    "seed": "seed of the LoRA init and the data order",
}


def documented(function, settings: dict | None = None):
    """`function` with its docstring made whole for `--help`: an Args line from FLAG_HELP for each parameter it does
    not describe, then the settings that are not flags (`settings`, {name: value}) and the HOMEWORK_* variables."""
    doc = inspect.cleandoc(function.__doc__ or function.__name__)
    if "Args:" not in doc:
        doc += "\n\nArgs:"
    doc += "".join(
        f"\n    {name}: {FLAG_HELP[name]}"
        for name in inspect.signature(function).parameters
        if name in FLAG_HELP and f"\n    {name}:" not in doc
    )
    notes = [f"{name} = {value}" for name, value in (settings or {}).items()]
    notes += [f"{name}: {what}" for name, what in ENVIRONMENT.items()]
    function.__doc__ = doc.replace(
        "\nArgs:", "\nSettings in the code, and the environment:\n    " + "\n    ".join(notes) + "\n\nArgs:", 1
    )
    return function


def cli(commands, settings: dict | None = None):
    """fire.Fire, with our own errors and Ctrl-C printed as one line instead of a traceback, an unknown flag, a stray
    value or a boolean that is not one refused before the command starts (`bad_args`), and every flag's help line,
    `settings` and the environment in `--help` (`documented`). A command stopped by Ctrl-C says what it kept by raising
    KeyboardInterrupt("what was kept"); every file is written whole or not at all (data.write_json, adapters.save)."""
    import fire

    for function in commands.values() if isinstance(commands, dict) else [commands]:
        documented(function, settings)
    args = sys.argv[1:]
    function, flags = (commands.get(args[0]), args[1:]) if isinstance(commands, dict) and args else (commands, args)
    if callable(function) and (problem := bad_args(function, flags)):
        known = " ".join(f"[{p.name} ...]" if p.kind is p.VAR_POSITIONAL else f"--{p.name}"
                         for p in inspect.signature(function).parameters.values())
        sys.exit(f"error: {function.__name__} {problem} (it takes {known})")
    try:
        fire.Fire(commands)
    except UsageError as e:  # DataError and CheckpointError are its kinds
        sys.exit(f"error: {e}")
    except KeyboardInterrupt as e:
        kept = e.args[0] if e.args else "no file was left half-written, and none it would have replaced was"
        sys.exit(f"stopped (Ctrl-C): {kept}")


def check_flags(checks: list[tuple[str, object, bool, str]]):
    """One UsageError naming every (flag, value, ok, what it must be) that is not ok."""
    if bad := [f"--{name} {value!r} ({want})" for name, value, ok, want in checks if not ok]:
        raise UsageError("bad values: " + "; ".join(bad))


def check_training(output_dir, learning_rate, epochs, batch_size, max_steps, lora_r, lora_dropout, seed, max_question):
    """A one-line error for any training flag the Trainer would take only to fail or train nothing, and for an
    output_dir that can't be written."""

    def number(x) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)

    check_flags(
        [
            ("learning_rate", learning_rate, number(learning_rate) and learning_rate >= 0, "0 or more"),
            ("epochs", epochs, number(epochs) and epochs > 0, "more than 0"),
            ("batch_size", batch_size, is_count(batch_size), "1 or more"),
            ("max_steps", max_steps, max_steps == -1 or is_count(max_steps), "-1 for none, or 1 or more"),
            ("lora_r", lora_r, lora_r is None or is_count(lora_r), "1 or more"),
            ("lora_dropout", lora_dropout, number(lora_dropout) and 0 <= lora_dropout < 1, "from 0 to below 1"),
            ("seed", seed, is_count(seed, 0), "a whole number, 0 or more"),
            ("max_question", max_question, is_count(max_question, 0), "0 for none, or more"),
        ]
    )
    check_output_dir(output_dir)


def write_problem(folder: Path) -> str | None:
    """Why this process can't write in `folder` (made if missing), or None if it can: a file made there and removed."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as e:
        return str(e.strerror or e)
    return None


# What a training's --output_dir holds: the adapter, its tensorboard logs and learning curve (and PEFT's model card)
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "runs", "curve.json", "README.md")


def check_output_dir(path, holds: tuple[str, ...] = ADAPTER_FILES) -> Path:
    """`path` as a folder this process can write in (made if missing), or a one-line error before a model loads. A
    folder holding anything but what this command writes there (`holds`, glob patterns) is refused: `--output_dir .`
    would write over a repository's files."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--output_dir {path} is a file, not a folder")
    if path.is_dir() and (others := sorted(p.name for p in path.iterdir() if not any(p.match(h) for h in holds))):
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise UsageError(f"--output_dir {path} holds what this command does not write ({shown}): name a new or empty "
                         "folder, or one of its own earlier runs")
    if problem := write_problem(path):
        raise UsageError(f"can't write in --output_dir {path}: {problem}")
    return path


def check_output_file(output: Path, overwrite: bool):
    """A one-line error, before the model loads, for an output that is a folder, exists, or can't be written."""
    if output.is_dir():
        raise UsageError(f"{output} is a folder: name the rows' file")
    if output.exists() and not overwrite:
        raise UsageError(f"{output} exists: pass --overwrite to replace it")
    if problem := write_problem(output.parent):
        raise UsageError(f"can't write {output}: {problem}")


# Each CoT example asks the question's own words again: a 10,000-character question made a prompt of 17,197
# tokens, past the model's 8,192-token context.
MAX_QUESTION_CHARS = 1000


def checked_question(question) -> str:
    """The question as text (Fire passes `ask 42` as an int), or a UsageError if it is empty or too long for a prompt.
    The `ask` commands call it before they load a model."""
    question = str(question).strip()
    if not question:
        raise UsageError("the question is empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise UsageError(f"the question is {len(question)} characters long; at most {MAX_QUESTION_CHARS}")
    return question


def checked_test(max_question, split: str) -> tuple[int, str]:
    """A `test` command's flags, or a one-line error before the model loads: a count of 1 or more, a known split."""
    check_flags([("max_question", max_question, is_count(max_question), "1 or more")])
    Dataset(split)  # a MissingData error if there is no such split
    return max_question, split
