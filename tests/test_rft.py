import json
import os
import re
from collections import Counter
from types import SimpleNamespace

import pytest
import torch

from homework import adapters, data, datagen, evaluation, rft, sampling, settings
from homework.data import DataError
from homework.units import rationale, reader
from homework.base_llm import parse_answer
from homework.sft import plain_question
from homework.data import DATA_DIR, Dataset


def worked(answer, quantity=1) -> str:
    """A sampled completion that states the factor of a question of `quantity` and gives its answer."""
    return f"1 x = {answer / quantity} y. {quantity} * {answer / quantity} = {answer}. <answer>{answer}</answer>"


def steps(question: str, answer: float) -> str:
    reading = reader.read_question(question)
    return rationale.write(reading, answer / reading.n)


def test_shipped_rows_are_the_models_own_completions_graded_correct_one_for_nearly_every_training_question():
    rows = json.loads((DATA_DIR / "rft.json").read_text())
    train = dict(Dataset("train").data)
    assert len(rows) > 0.9 * len(train) and len({q for q, *_ in rows}) == len(rows)
    for question, answer, completion in rows:
        assert train[question] == answer and data.is_answer_valid(parse_answer(completion), answer)
        assert rationale.states_the_factor(completion, answer / reader.read_question(question).n)


def test_shipped_training_rows_hold_step_by_step_at_many_quantities():
    rows = json.loads((DATA_DIR / "rft_train.json").read_text())
    for question, answer, reasoning in rows:
        assert rationale.holds(question, reasoning, answer), (question, reasoning)
    kinds = {evaluation.quantity_kind(q) for q, *_ in rows}
    assert {"1 to 10", "decimal", "quarter", "11 to 999", "1000 and over"} <= kinds


def sampled_by(sampler, oversample):
    """datagen's `sample` step with this sampler, as sampling.run calls it."""
    return lambda batch: datagen.sample(sampler, batch, oversample, 0.7)


class FakeSampler:
    """Answers right on even-numbered questions, wrong on odd ones; can be told to crash after some calls."""

    def __init__(self, questions, crash_after=None):
        self.truth = dict(questions)
        self.index = {q: i for i, (q, _) in enumerate(questions)}
        self.calls, self.seen, self.crash_after = 0, [], crash_after

    def format_prompt(self, q):
        return q

    def batched_generate(self, prompts, num_return_sequences, temperature):
        if self.crash_after is not None and self.calls >= self.crash_after:
            raise KeyboardInterrupt("killed")
        self.calls += 1
        self.seen += prompts
        answers = [self.truth[p] if self.index[p] % 2 == 0 else -1 for p in prompts]
        return [[worked(a, reader.read_question(p).n)] * num_return_sequences for p, a in zip(prompts, answers)]


def test_a_killed_run_resumes_without_duplicates(tmp_path):
    questions = Dataset("train").data[:10]
    progress = tmp_path / "rft.json.partial"
    with pytest.raises(KeyboardInterrupt, match=f"^{progress} keeps 6 of 10 questions sampled; the same command"):
        sampling.resumable(sampled_by(FakeSampler(questions, crash_after=2), 3), questions, 3, progress, chunk=3)
    assert len(json.loads(progress.read_text())) == 6  # two chunks were saved before the crash
    resumed = FakeSampler(questions)
    results = sampling.resumable(sampled_by(resumed, 3), questions, 3, progress, chunk=3)
    assert resumed.seen == [q for q, _ in questions[6:]]  # only what was left
    assert list(results) == [q for q, _ in questions]
    assert [r[1] is not None for r in results.values()] == [i % 2 == 0 for i in range(10)]
    assert datagen.report(results, 3) == {"yield": 0.5, "pass@1": 0.5, "pass@3": 0.5}


def test_atomic_write_leaves_the_old_file_on_a_crash(tmp_path, monkeypatch):
    path = tmp_path / "rft.json"
    data.write_json(path, [["q", 1.0, "r"]])

    def crash(*args):
        raise OSError("disk died")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        data.write_json(path, [["q", 2.0, "r"]] * 1000)
    assert json.loads(path.read_text()) == [["q", 1.0, "r"]]


def test_examples_pair_the_prompt_with_the_reasoning(tiny_model, tokenizer):
    model = rft.RFTModel(model=tiny_model, tokenizer=tokenizer)
    (q0, a0), (q1, a1) = Dataset("train").data[:2]
    examples = rft.examples(model, [[q0, a0, "r0"], [q1, a1, "r1"]])
    assert examples == [(model.format_prompt(q0), " r0"), (model.format_prompt(q1), " r1")]


def test_the_prompt_is_the_question_as_sft_asks_it(tiny_model, tokenizer):
    model = rft.RFTModel(model=tiny_model, tokenizer=tokenizer)
    assert model.format_prompt("how many grammes in 6.5 kilos") == "Convert 6.5 kilogram to gram."
    assert model.format_prompt("tell me a joke") == "tell me a joke"  # not a conversion: the question as written
    examples = rft.examples(model, [["3 ft to in", 36.0, "1 foot = 12 inch. 3 * 12 = 36. <answer>36</answer>"]])
    assert examples == [("Convert 3 foot to inch.", " 1 foot = 12 inch. 3 * 12 = 36. <answer>36</answer>")]


def test_rft_trains_and_reloads_on_a_tiny_model(tmp_path, tiny_base, fp32_policy):
    rows = [[q, a, worked(a)] for q, a in Dataset("train").data[:4]]
    data = tmp_path / "rft.json"
    data.write_text(json.dumps(rows))
    out = tmp_path / "rft_model"
    rft.train(str(out), str(data), max_question=0, checkpoint=str(tiny_base), max_steps=2, batch_size=2)
    from peft import PeftModel
    from safetensors.torch import load_file

    unmerged = adapters.load(out, rft.RFTModel, merge=False)
    assert isinstance(unmerged, rft.RFTModel) and isinstance(unmerged.model, PeftModel)
    saved = load_file(out / "adapter_model.safetensors")
    loaded = {n.replace(".default.weight", ".weight"): p for n, p in unmerged.model.named_parameters() if "lora_" in n}
    assert set(saved) == set(loaded) and saved
    for name, tensor in saved.items():  # the weights in memory are the ones trained and saved
        assert torch.equal(loaded[name].to(tensor.device, tensor.dtype), tensor), name
    assert any(t.abs().sum() > 0 for n, t in saved.items() if "lora_B" in n)  # B starts at zero: it trained
    merged = rft.load(out)  # for inference: merged into the base weights, the same greedy answers
    assert not isinstance(merged.model, PeftModel)
    prompts = [merged.format_prompt(q) for q, _ in Dataset("valid").data[:3]]
    merged.max_new_tokens = unmerged.max_new_tokens = 8
    assert merged.batched_generate(prompts) == unmerged.batched_generate(prompts)


def test_rft_without_data_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="run python -m homework.datagen"):
        rft.train(str(tmp_path / "m"), str(tmp_path / "missing.json"))


@pytest.mark.slow
def test_datagen_end_to_end_on_ten_questions(tmp_path, monkeypatch):
    out = tmp_path / "rft.json"
    monkeypatch.setenv(settings.CHECKPOINT, "embedded")
    datagen.generate_dataset(str(out), oversample=2, temperature=0.7, max_question=10)
    rows = json.loads(out.read_text())
    assert rows and not (tmp_path / "rft.json.partial").exists()
    train = dict(Dataset("train").data[:10])
    for q, a, completion in rows:
        assert train[q] == a and data.is_answer_valid(parse_answer(completion), a)


def test_show_brackets_the_rationale_and_nothing_of_the_prompt(tmp_path, tiny_base, capsys):
    (q, a), = Dataset("train").data[:1]
    data = tmp_path / "rft.json"
    data.write_text(json.dumps([[q, a, worked(a)]]))
    rft.show(0, str(data), str(tiny_base))
    out = capsys.readouterr().out
    trained = "".join(re.findall(r"\[(.*?)\]", out, flags=re.S))
    assert trained == " " + worked(a) + "<|im_end|>"  # the reasoning and EOS
    assert "[" not in out.split(plain_question(q))[0]  # the prompt, untrained


def test_datagen_samples_every_training_question_and_keeps_a_completion_as_written(tmp_path, monkeypatch):
    sampled = []
    monkeypatch.setattr(datagen, "CoTModel", lambda checkpoint, calculator: SimpleNamespace(prompts_at_once=lambda: 64))

    def fake_run(sample, questions, output, first_chunk, save_every):
        sampled.extend(questions)
        return {q: [a, worked(a, reader.read_question(q).n) if i % 3 else None, 1] for i, (q, a) in enumerate(questions)}

    monkeypatch.setattr(sampling, "run", fake_run)
    out = tmp_path / "rft.json"
    datagen.generate_dataset(str(out), oversample=2, max_question=200, seed=3)
    assert sampled == [tuple(x) for x in Dataset("train").data[:200]]  # every one, none left out
    rows = json.loads(out.read_text())
    assert rows == [[q, a, worked(a, reader.read_question(q).n)] for i, (q, a) in enumerate(sampled) if i % 3]
    with pytest.raises(settings.UsageError, match="exists: pass --overwrite"):  # never replaced unasked
        datagen.generate_dataset(str(out), oversample=2, max_question=20, seed=3)


def test_rft_data_rewrites_each_completion_and_writes_the_sampled_factors_out_on_the_grid_and_spread(tmp_path):
    from homework.recipes import rft_data

    train = Dataset("train").data[:300]
    rows = [[q, a, worked(a, reader.read_question(q).n)] for q, a in train]
    rows[0][2] = "no factor stated. <answer>1</answer>"  # a completion with no factor: dropped by the rewrite
    sampled, out = tmp_path / "rft.json", tmp_path / "rft_train.json"
    sampled.write_text(json.dumps(rows))
    figures = rft_data.make(str(sampled), str(out), form="split", grid_per_pair=2, halves_per_pair=1,
                            spread_count=300, seed=1)
    made = json.loads(out.read_text())
    assert figures["sampled"] == 300 and figures["rewritten"] == 299 and figures["rows"] == len(made)
    assert [r[:2] for r in made[:299]] == [r[:2] for r in rows[1:]]
    grid, spread = made[299 : 299 + figures["grid"]], made[299 + figures["grid"] :]
    pairs = {reader.read_question(q).units for q, _ in train[1:]}
    asked = {(reader.read_question(q).units, reader.read_question(q).n) for q, _ in train[1:]}
    readings = [reader.read_question(q) for q, *_ in grid]
    halves = [r for r in readings if r.n % 1]
    assert len(grid) > 100 and all(r.units in pairs and r.n in rft_data.WHOLES + rft_data.HALVES
                                   and (r.units, r.n) not in asked for r in readings)
    assert max(Counter(r.units for r in readings if not r.n % 1).values()) == 2  # grid_per_pair
    assert len(halves) > 50 and max(Counter(r.units for r in halves).values()) == 1  # halves_per_pair
    assert len(spread) > 20 and all(reader.read_question(q).units in pairs for q, *_ in spread)
    for question, answer, reasoning in made:
        assert rationale.holds(question, reasoning, answer, "split"), reasoning
    with pytest.raises(settings.UsageError, match="exists: pass --overwrite"):  # never replaced unasked
        rft_data.make(str(sampled), str(out), rewrite_rows=False)
    assert json.loads(out.read_text()) == made
    rft_data.make(str(sampled), str(out), rewrite_rows=False, overwrite=True)  # no step: the completions as sampled
    assert json.loads(out.read_text()) == rows


@pytest.mark.parametrize("flags, named", [({"oversample": 0}, "--oversample 0"), ({"oversample": -1}, "--oversample -1"),
                                          ({"temperature": -1}, "--temperature -1"), ({"seed": -2}, "--seed -2")])
def test_datagen_refuses_bad_flags_before_a_model_loads(flags, named, tmp_path, monkeypatch):
    monkeypatch.setattr(datagen, "CoTModel", lambda *args, **kwargs: pytest.fail("a model was loaded"))
    with pytest.raises(settings.UsageError, match=named):
        datagen.generate_dataset(str(tmp_path / "rft.json"), **flags)
    assert not any(tmp_path.iterdir())


def test_datagen_refuses_a_folder_as_its_output(tmp_path, monkeypatch):
    monkeypatch.setattr(datagen, "CoTModel", lambda *args, **kwargs: pytest.fail("a model was loaded"))
    with pytest.raises(settings.UsageError, match="is a folder"):
        datagen.generate_dataset(str(tmp_path), overwrite=True)


@pytest.mark.parametrize("max_question", [0, -1, "abc"])
def test_datagen_refuses_a_count_that_is_not_one_or_more(max_question, tmp_path):
    out = tmp_path / "rft.json"
    out.write_text('[["q", 1.0, "r"]]')
    with pytest.raises(settings.UsageError, match="--max_question"):
        datagen.generate_dataset(str(out), max_question=max_question, overwrite=True)
    assert out.read_text() == '[["q", 1.0, "r"]]'  # left as it was


@pytest.mark.parametrize("save_every, saves", [(1e-9, 5), (1e9, 2)])
def test_progress_is_saved_about_every_save_every_seconds(tmp_path, monkeypatch, save_every, saves):
    # The first chunk is one question (64 samples fill a CPU batch); the next ones take about save_every seconds at
    # the pace measured: every question when that is no time at all, all the rest when it is forever.
    questions = [(f"How many gram are there per {n} kg?", 1000.0 * n) for n in range(1, 6)]
    written = []
    monkeypatch.setattr(sampling, "write_json", lambda path, rows: written.append(len(rows)))
    results = sampling.resumable(sampled_by(FakeSampler(questions), 64), questions, 1, tmp_path / "progress.json",
                                 save_every=save_every)
    assert len(results) == 5 and written[-1] == 5 and len(written) == saves


def test_datagen_into_a_folder_it_cannot_write_is_refused_before_a_model_loads(tmp_path, monkeypatch):
    (tmp_path / "a_file").write_text("")
    monkeypatch.setattr(datagen, "CoTModel", lambda *args, **kwargs: pytest.fail("a model was loaded"))
    with pytest.raises(settings.UsageError, match="can't write .*a_file/rft.json"):
        datagen.generate_dataset(str(tmp_path / "a_file" / "rft.json"), max_question=2)
