import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from homework import adapters, loader, rft, settings, sft, training
from homework.cli import FLAG_HELP
from homework.units import numbers, table as units
from homework.base_llm import BaseLLM
from homework.data import Dataset
from tests.conftest import lora_train
from tests.conftest import make_tiny_model

EXAMPLES = [("How many gram are there per 6 kg?", sft.answer_text(6000.0)), ("What is 4 yard in ft?", sft.answer_text(12.0))] * 8


def test_plain_question_asks_every_wording_of_a_conversion_one_way():
    wordings = ["How many inches in 3 feet?", "3 ft to inches", "Express 3 foot in in.", "From ft to in, what is 3 units?",
                "How many in are there per 3 ft?", "3 FEET = ? INCHES"]
    assert {sft.plain_question(q) for q in wordings} == {"Convert 3 foot to inch."}
    assert sft.plain_question("How many ounce is 6 quart?") == "Convert 6 quart to fluid ounce."  # ounce beside a volume
    assert sft.plain_question("5 oz in grams") == "Convert 5 ounce to gram."
    assert sft.plain_question("Convert 1,500 mL to l") == "Convert 1500 milliliter to liter."
    assert sft.plain_question("How many cc in 2.5 m^3?") == "Convert 2.5 cubic meter to cubic centimeter."
    assert sft.plain_question("What's 10 mph in km/h") == "Convert 10 mile per hour to kilometer per hour."
    # a question that doesn't read is asked as written, numbers made plain
    assert sft.plain_question("3 kelvin in celsius") == "3 kelvin in celsius"
    assert sft.plain_question("What is 1,500 furlongs?") == "What is 1500 furlongs?"


def test_each_unit_has_one_name():
    names = {}
    for table in units.SPELLINGS.values():
        for expression in table.values():
            names.setdefault(units.unit_name(expression), set()).add(expression)
    shared = [group for group in names.values() if len(group) > 1]
    assert shared == [{"cc", "centimeter ** 3"}]  # pint's cc is the cubic centimeter
    assert units.unit_name("fluid_ounce") == "fluid ounce" and units.unit_name("10 * year") == "decade"


def test_train_and_load_ask_the_plain_question(tiny_base, tmp_path, monkeypatch, fp32_policy):
    trained_on = []
    real = sft.train_lora
    monkeypatch.setattr(sft, "train_lora", lambda llm, examples, *a, **k: trained_on.extend(examples) or real(llm, examples, *a, **k))
    out = tmp_path / "adapter"
    sft.train(output_dir=str(out), checkpoint=str(tiny_base), max_steps=1, batch_size=4, max_question=0, more_wordings=1)
    train = Dataset("train")
    question, answer = train[0]
    assert trained_on[0] == (sft.plain_question(question), sft.answer_text(answer)) and trained_on[0][0] != question
    # then each training question once more, with another quantity: the same pair of units, the answer scaled
    assert len(train) < len(trained_on) <= 2 * len(train)
    assert all(prompt.startswith("Convert ") for prompt, _ in trained_on)
    assert len({prompt for prompt, _ in trained_on}) > 1.5 * len({sft.plain_question(q) for q, _ in train.data})
    model = sft.load(out)
    assert isinstance(model, sft.SFTModel) and model.format_prompt(question) == trained_on[0][0]


def test_labels_are_masked_on_the_prompt_and_padding(tokenizer):
    short = sft.tokenize(tokenizer, "What is 4 yard in ft?", sft.answer_text(12.0))
    long = sft.tokenize(tokenizer, "How many gram are there per 6 kg, in your opinion?", sft.answer_text(6000.0))
    prompt_len = len(tokenizer("What is 4 yard in ft?")["input_ids"])
    assert short["labels"][:prompt_len] == [-100] * prompt_len
    assert short["labels"][prompt_len:] == short["input_ids"][prompt_len:]
    assert tokenizer.decode(short["input_ids"][prompt_len:]) == " <answer>12</answer><|im_end|>"

    batch = sft.collate([short, long], pad_token_id=tokenizer.pad_token_id)
    n, width = len(short["input_ids"]), len(long["input_ids"])
    assert batch["input_ids"].shape == batch["attention_mask"].shape == (2, width)
    assert batch["input_ids"][0, :n].tolist() == short["input_ids"] and (batch["attention_mask"][0, n:] == 0).all()
    assert batch["attention_mask"][1].sum() == width
    # labels from the last prompt token of the shorter prompt on, -100 on the padding
    assert batch["logits_to_keep"].tolist() == list(range(prompt_len - 1, width))
    assert batch["labels"][0].tolist() == (short["labels"] + [-100] * (width - n))[prompt_len - 1 :]


def test_trimmed_logits_give_the_same_loss(tiny_model, tokenizer):
    examples = [sft.tokenize(tokenizer, q, a) for q, a in EXAMPLES[:2] + [("Please turn 2 gallon into cm**3, now.", sft.answer_text(7570.8))]]
    full = sft.collate(examples, tokenizer.pad_token_id, pad_to=max(len(e["input_ids"]) for e in examples))
    trimmed = sft.collate(examples, tokenizer.pad_token_id)
    assert len(trimmed["logits_to_keep"]) < full["input_ids"].shape[1]
    on_device = lambda batch: {k: v.to(tiny_model.device) if torch.is_tensor(v) else v for k, v in batch.items()}
    with torch.no_grad():
        full_loss = tiny_model(**on_device(full)).loss
        trimmed_out = tiny_model(**on_device(trimmed))
    assert trimmed_out.logits.shape[1] == len(trimmed["logits_to_keep"])
    torch.testing.assert_close(trimmed_out.loss, full_loss)


def test_round_answer_stays_inside_the_tolerance():
    from homework.data import is_answer_valid

    for x in [213.36, 3155760000.0, 0.0568182, 6000.0, 26.2467, 0.0123]:
        assert is_answer_valid(numbers.round_answer(x), x) and abs(numbers.round_answer(x) - x) <= 0.005 * x


def test_training_changes_lora_only_and_lowers_the_loss(tiny_model, tokenizer, tmp_path):
    base_before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    batches = []  # the collator passed is the one the Trainer batches with
    collator = lambda examples, pad_token_id: batches.append(len(examples)) or sft.collate(examples, pad_token_id)
    llm, trainer = lora_train(EXAMPLES, tmp_path / "adapter", max_steps=30, batch_size=4, learning_rate=5e-2, lora_r=8,
                              lora_alpha=32, llm=BaseLLM(model=tiny_model, tokenizer=tokenizer), data_collator=collator)
    assert len(batches) >= 30 and set(batches) <= {1, 2, 3, 4}
    state = llm.model.state_dict()
    lora_b = [v for k, v in state.items() if "lora_B" in k]
    assert lora_b and all(v.abs().sum() > 0 for v in lora_b)  # lora_B starts at zero
    for name, before in base_before.items():
        key = next(k for k in state if k.endswith(name.replace(".weight", ".base_layer.weight")) or k.endswith(name))
        assert torch.equal(state[key], before), name
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert len(losses) == 3 and losses[-1] < losses[0] - 1.0
    assert not list((tmp_path / "adapter").glob("checkpoint-*"))


def test_lora_rank_is_the_largest_that_fits_the_budget(tokenizer):
    from peft import LoraConfig, get_peft_model

    def saved_lora_bytes(rank):  # what the LoRA tensors take in bf16, as save_adapter writes them
        model = get_peft_model(make_tiny_model(tokenizer), LoraConfig(r=rank, target_modules="all-linear"))
        return sum(p.numel() * 2 for n, p in model.named_parameters() if "lora_" in n)  # bf16

    budget = 5 * saved_lora_bytes(1)  # between rank 4 and rank 8
    rank = adapters.lora_rank(make_tiny_model(tokenizer), budget)
    assert rank == 4 and saved_lora_bytes(rank) <= budget < saved_lora_bytes(2 * rank)
    assert adapters.lora_rank(make_tiny_model(tokenizer), 1e12) == 32  # capped


def test_saved_adapter_is_small_and_reloads_to_identical_outputs(tiny_base, tmp_path, fp32_policy):
    out = tmp_path / "adapter"
    llm, _ = lora_train(EXAMPLES, out, checkpoint=str(tiny_base), max_steps=10, batch_size=4, learning_rate=1e-2)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    assert size < 20e6
    prompts = [q for q, _ in EXAMPLES[:2]] + ["Hi"]
    llm.max_new_tokens = 8
    reloaded = sft.load(out)
    reloaded.max_new_tokens = 8
    assert reloaded.batched_generate(prompts) == llm.batched_generate(prompts)
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == str(tiny_base)


def test_a_save_that_dies_midway_leaves_the_old_adapter_whole(tiny_base, tmp_path, fp32_policy):
    out = tmp_path / "adapter"
    llm, _ = lora_train(EXAMPLES, out, checkpoint=str(tiny_base), max_steps=2, batch_size=4)
    before = {f.name: f.read_bytes() for f in out.iterdir() if f.is_file()}
    save = llm.model.save_pretrained

    def dies_midway(directory, **kwargs):
        save(directory, **kwargs)
        weights = Path(directory) / "adapter_model.safetensors"
        weights.write_bytes(weights.read_bytes()[:100])  # half written, then the process is killed
        raise KeyboardInterrupt

    llm.model.save_pretrained = dies_midway
    with pytest.raises(KeyboardInterrupt):
        adapters.save(llm.model, out)
    assert {f.name: f.read_bytes() for f in out.iterdir() if f.is_file()} == before
    assert not [f.name for f in tmp_path.iterdir() if f.name.startswith(".")]  # no temp folder left beside it


def test_load_errors_on_a_missing_adapter(tmp_path):
    with pytest.raises(loader.CheckpointError, match="no adapter in"):
        sft.load(tmp_path / "nothing_here")


def test_load_errors_on_a_mismatched_base(tiny_base, tmp_path, tokenizer, monkeypatch):
    out = tmp_path / "adapter"
    lora_train(EXAMPLES, out, checkpoint=str(tiny_base), max_steps=1, batch_size=4)
    other = tmp_path / "other_base"
    bigger = make_tiny_model(tokenizer)
    bigger = type(bigger)(bigger.config.__class__(**{**bigger.config.to_dict(), "hidden_size": 32, "intermediate_size": 64}))
    bigger.save_pretrained(other)
    tokenizer.save_pretrained(other)

    monkeypatch.setenv(settings.CHECKPOINT, str(other))  # the user forces another base model
    with pytest.raises(loader.CheckpointError, match="was trained on"):
        sft.load(out)
    monkeypatch.delenv(settings.CHECKPOINT)

    config = json.loads((out / "adapter_config.json").read_text())
    (out / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": str(other)}))
    with pytest.raises(loader.CheckpointError, match="does not fit the base model"):
        sft.load(out)


@pytest.mark.slow
def test_two_processes_train_one_adapter(tiny_base, tmp_path):
    """torchrun on the CPU (accelerate launch --cpu runs one process whatever --num_processes says)."""
    pytest.importorskip("fire")
    out = tmp_path / "adapter"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "-m", "homework.sft", "train", "--output_dir", str(out), "--max_steps", "2", "--batch_size", "2", "--max_question", "0"]
    env = {**os.environ, settings.CHECKPOINT: str(tiny_base), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "adapter_config.json").is_file()
    assert sorted(re.findall(r"rank (\d) of (\d): 2 steps", result.stdout)) == [("0", "2"), ("1", "2")], result.stdout  # both trained


@pytest.mark.parametrize("flags, message", [
    ({"batch_size": 0}, "--batch_size 0 (1 or more)"),
    ({"batch_size": "8"}, "--batch_size '8'"),
    ({"epochs": 0}, "--epochs 0 (more than 0)"),
    ({"learning_rate": -1e-4}, "--learning_rate -0.0001"),
    ({"max_steps": 0}, "--max_steps 0 (-1 for none, or 1 or more)"),
    ({"lora_r": 0}, "--lora_r 0"),
    ({"max_question": -1}, "--max_question -1"),
    ({"learning_rate": 1e999}, "--learning_rate inf (0 or more)"),  # what Fire makes of 1e999
    ({"learning_rate": float("nan")}, "--learning_rate nan"),
    ({"seed": "abc"}, "--seed 'abc'"),
    ({"lora_dropout": 2}, "--lora_dropout 2 (from 0 to below 1)"),
])
def test_bad_training_values_are_refused_before_a_model_loads(flags, message, monkeypatch, tmp_path):
    monkeypatch.setattr(sft, "SFTModel", lambda *args, **kwargs: pytest.fail("a model was loaded"))
    monkeypatch.setattr(rft, "RFTModel", lambda *args, **kwargs: pytest.fail("a model was loaded"))
    for train in (sft.train, rft.train):
        with pytest.raises(settings.UsageError, match=re.escape(message)):
            train(output_dir=str(tmp_path / "out"), **flags)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_train_help_shows_every_training_setting_with_its_help_line():
    result = subprocess.run([sys.executable, "-m", "homework.rft", "train", "--help"], cwd=Path(__file__).parent.parent,
                            capture_output=True, text=True, env={**os.environ, "PAGER": "cat"})
    shown = " ".join((result.stdout + result.stderr).split())  # Fire writes help to stderr, and wraps long lines
    for flag in ("learning_rate", "epochs", "batch_size", "max_steps", "lora_r", "lora_alpha", "lora_dropout", "seed"):
        assert f"--{flag}=" in shown and " ".join(FLAG_HELP[flag].split()) in shown, flag
    assert f"Default: {training.defaults(rft.train)['learning_rate']}" in shown  # RFT's own learning rate
    assert all(name in shown for name in settings.ENVIRONMENT)


def test_flags_reach_the_trainer(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr(sft, "SFTModel", lambda *args, **kwargs: seen.update(checkpoint=args[0]))
    monkeypatch.setattr(sft, "train_lora", lambda llm, examples, out, **settings: seen.update(settings=settings))
    with pytest.raises(AttributeError):  # the fake trainer returns nothing to evaluate with
        sft.train(output_dir=str(tmp_path), max_question=1, more_wordings=0, epochs=0.5, lora_r=4, checkpoint="somewhere",
                  curve_every=50)
    assert seen == {"checkpoint": "somewhere", "settings": dict(learning_rate=5e-4, epochs=0.5, batch_size=8, max_steps=-1,
                                                                lora_r=4, lora_alpha=None, lora_dropout=0.0, seed=0,
                                                                curve_every=50)}


def test_a_training_that_goes_non_finite_keeps_the_adapter_there(tiny_base, tmp_path, fp32_policy):
    out = tmp_path / "adapter"
    lora_train(EXAMPLES, out, checkpoint=str(tiny_base), max_steps=2, batch_size=4)
    before = {f.name: f.read_bytes() for f in out.iterdir() if f.is_file()}
    with pytest.raises(settings.UsageError, match="NaN or infinite .* nothing saved"):
        lora_train(EXAMPLES, out, checkpoint=str(tiny_base), max_steps=12, batch_size=4, learning_rate=1e30)
    assert {f.name: f.read_bytes() for f in out.iterdir() if f.is_file()} == before


@pytest.mark.parametrize("stage", ["sft", "rft"])
def test_an_output_dir_that_is_a_file_is_refused_before_a_model_loads(stage, tmp_path, monkeypatch):
    module = {"sft": sft, "rft": rft}[stage]
    monkeypatch.setattr(module, {"sft": "SFTModel", "rft": "RFTModel"}[stage], lambda *a, **k: pytest.fail("loaded"))
    (tmp_path / "a_file").write_text("keep me")
    with pytest.raises(settings.UsageError, match="is a file, not a folder"):
        module.train(output_dir=str(tmp_path / "a_file"))
    assert (tmp_path / "a_file").read_text() == "keep me"
    # a folder of other files (`--output_dir .` in a repository) is not an adapter's: refused, nothing written there
    with pytest.raises(settings.UsageError, match=r"holds what this command does not write \(a_file\): name a new"):
        module.train(output_dir=str(tmp_path))
    assert [p.name for p in tmp_path.iterdir()] == ["a_file"]


@pytest.mark.parametrize("stage", ["cot", "sft", "rft"])
@pytest.mark.parametrize("max_question", [0, -1, "abc"])
def test_a_test_of_no_questions_is_refused_before_a_model_loads(stage, max_question, monkeypatch):
    import importlib

    module = importlib.import_module(f"homework.{stage}")
    monkeypatch.setattr(module, "load", lambda *a, **k: pytest.fail("a model was loaded"))
    with pytest.raises(settings.UsageError, match=f"--max_question {max_question!r}"):
        module.test(max_question=max_question)


def test_show_of_a_row_that_does_not_exist_is_one_line():
    from homework.data import DataError

    with pytest.raises(DataError, match="has 1000 rows: no row 99999999"):
        sft.show(index=99999999)


def test_the_learning_curve_scores_every_few_steps_and_leaves_the_training_as_it_was(tiny_base, tmp_path, fp32_policy):
    plain, _ = lora_train(EXAMPLES, tmp_path / "plain", checkpoint=str(tiny_base), max_steps=5, batch_size=4)
    scored, trainer = lora_train(EXAMPLES, tmp_path / "scored", checkpoint=str(tiny_base), max_steps=5, batch_size=4,
                                 curve_every=2)
    curve = json.loads((tmp_path / "scored" / "curve.json").read_text())
    assert [point["step"] for point in curve] == [2, 4, 5]  # every 2 steps, and the last
    assert all(0 <= point[split] <= 1 for point in curve for split in ("valid", "offgrid"))
    lora = {n: p for n, p in plain.model.named_parameters() if "lora_" in n}
    assert lora and all(torch.equal(p, lora[n]) for n, p in scored.model.named_parameters() if "lora_" in n)
    assert scored.model.training is False and trainer.throughput["tokens"] > 0
