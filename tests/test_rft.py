import json
import math
import os
import re

import pytest
import torch

from homework import data, datagen, generator, loader, lora, reader, rft, units
from homework.data import DATA_DIR, Dataset

TRUTH = 96.0  # "How many in are there per 8 ft?"


def worked(answer, quantity=1) -> str:
    """The shortest rationale that states the factor of a question of `quantity` and works its answer out."""
    return f"{quantity} x = {answer} y. 1 * {answer} = {answer}. <answer>{answer}</answer>"


@pytest.mark.parametrize(
    "text,ok,why",
    [
        ("1 ft = 12 in. 8 * 12 = 96. <answer>96</answer>", True, "true arithmetic, matching answer"),
        ("1 ft = 12 in. 8 * 12 = 100. <answer>100</answer>", False, "8 * 12 is not 100, though 100 is within 5% of 96"),
        ("1 ft = 12 in. 8 * 12 = 96. <answer>100</answer>", False, "the answer is not what the reasoning computed"),
        ("1 in = <answer>100</answer>", False, "no arithmetic: within 5% of 96, but not worked out"),
        ("<answer>96</answer>", False, "a bare answer is no rationale"),
        ("96 / 8 = 12. 8 * 12 = 96. <answer>96</answer>", True, "division too"),
        ("1 ft = 12 in. 8 * 12 = 1,000. <answer>96</answer>", False, "commas are read, and the sum is wrong"),
        ("1 mile = 5280 feet. 4 * 5280 = 21204. <answer>21204</answer>", False, "0.4% off: a slip we must not teach"),
        ("1 mi = 1.60934 km. 7 * 1.60934 = 11.2654. <answer>11.2654</answer>", True, "a rounded factor, a right product"),
    ],
)
def test_arithmetic_holds(text, ok, why):
    assert datagen.arithmetic_holds(text, datagen.parse_answer(text)) is ok, why


def test_shipped_rationales_are_correct_and_consistent():
    rows = json.loads((DATA_DIR / "rft.json").read_text())
    truth, held_out = dict(Dataset("train").data), {q for split in ("valid", "reworded") for q, _ in Dataset(split).data}
    assert len(rows) >= 100 and len({q for q, _, _ in rows}) == len(rows)
    for question, answer, reasoning in rows:
        assert question not in held_out, question  # evaluation questions are never trained on
        if question in truth:
            assert truth[question] == answer
        else:  # a training question asked again in other words (generator.reword): pint's answer
            assert math.isclose(answer, units.convert(*reader.read_question(question)), rel_tol=1e-6), question
        # the shipped rows were kept by the check of their time, arithmetic alone (no quantity: no statement check)
        assert datagen.select(answer, [reasoning]) == reasoning, reasoning


def test_shipped_rationales_count_thousands_in_their_power_of_ten():
    # as the prompt's examples do (cot.rationale): "1000 MB = 1000000 KB. 5 * 1000000 = 5000000." for 5000 MB;
    # 33 rows of --thousands state the question's own quantity first ("2500 feet = 762.08 m. 2.5 * 304.8 = 762.08.")
    rows = [(q, a, r, reader.read_question(q).n) for q, a, r in json.loads((DATA_DIR / "rft.json").read_text())]
    big = [(q, a, r, n) for q, a, r, n in rows if n >= 1000]
    assert len(big) >= 700
    for question, answer, reasoning, n in big:
        per = 10 ** (len(str(int(n))) - 1)
        assert reasoning.startswith((f"{per} ", f"{n:g} ")), reasoning
        assert float(re.search(r"([\d.]+) \* ", reasoning).group(1)) == n / per, reasoning  # 2.5 * ..., not 2500 * ...
        assert datagen.select(answer, [reasoning], n) == reasoning, reasoning  # a true statement of the factor


def test_select_keeps_a_correct_sample_and_drops_the_rest():
    wrong = "1 ft = 10 in. 8 * 10 = 80. <answer>80</answer>"
    lucky = "1 ft = 12 in. 8 * 12 = 100. <answer>100</answer>"
    right = " 1 ft = 12 in. 8 * 12 = 96. <answer>96</answer>"
    assert datagen.select(TRUTH, [wrong, lucky, right]) == right.strip()
    assert datagen.select(TRUTH, [wrong, lucky, "no answer at all"]) is None


@pytest.mark.parametrize("text,kept,why", [
    ("1 ft = 12 in. 8 * 12 = 96. <answer>96</answer>", True, "the factor, stated per one foot"),
    ("1000 ft = 12000 in. 0.008 * 12000 = 96. <answer>96</answer>", True, "per a power of ten"),
    ("8 ft = 12 in. 8 * 12 = 96. <answer>96</answer>", False, "the quantity stated with the factor: false"),
    ("8 * 12 = 96. <answer>96</answer>", False, "no statement at all"),
    ("1 ft = 10 in. 8 * 12 = 96. <answer>96</answer>", False, "a wrong factor stated, the right one multiplied"),
    ("0 ft = 12 in. 8 * 12 = 96. <answer>96</answer>", False, "zero of a unit: no factor, and no crash"),
])
def test_select_with_the_quantity_also_asks_for_a_true_statement_of_the_factor(text, kept, why):
    assert (datagen.select(TRUTH, [text], quantity=8) is not None) == kept, why
    assert datagen.select(TRUTH, [text]) is not None  # without the quantity, arithmetic alone: every one of these holds


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


class HintedSampler(FakeSampler):
    """Answers right only when the prompt states the answer."""

    def format_prompt(self, q, hint=None):
        return (q, hint)

    def batched_generate(self, prompts, num_return_sequences, temperature):
        self.seen += prompts
        return [[worked(hint if hint is not None else -1, reader.read_question(q).n)] * num_return_sequences for q, hint in prompts]


def test_rationalize_samples_with_the_answer_as_a_hint():
    questions = Dataset("train").data[:4]
    plain = datagen.sample_rationales(HintedSampler(questions), questions, 2, 0.7)
    assert all(reasoning is None for _, reasoning, _ in plain.values())
    sampler = HintedSampler(questions)
    hinted = datagen.sample_rationales(sampler, questions, 2, 0.7, rationalize=True)
    assert sampler.seen == [(q, a) for q, a in questions]  # each prompt stated its true answer
    assert [hinted[q][1] for q, _ in questions] == [worked(a, reader.read_question(q).n) for q, a in questions]


def test_a_killed_run_resumes_without_duplicates(tmp_path):
    questions = Dataset("train").data[:10]
    progress = tmp_path / "rft.json.partial"
    with pytest.raises(KeyboardInterrupt):
        datagen.sample_rationales(FakeSampler(questions, crash_after=2), questions, 3, 0.7, progress, chunk=3)
    assert len(json.loads(progress.read_text())) == 6  # two chunks were saved before the crash
    resumed = FakeSampler(questions)
    results = datagen.sample_rationales(resumed, questions, 3, 0.7, progress, chunk=3)
    assert resumed.seen == [q for q, _ in questions[6:]]  # only what was left
    assert list(results) == [q for q, _ in questions]
    assert [r[1] is not None for r in results.values()] == [i % 2 == 0 for i in range(10)]
    assert datagen.report(results, 3) == {"yield": 0.5, "pass@1": 0.5, "pass@3": 0.5}


class AwkwardSampler(FakeSampler):
    """Right answers in rationales holding the text that broke the old writer: quotes, newlines and "], [" ."""

    def batched_generate(self, prompts, num_return_sequences, temperature):
        groups = super().batched_generate(prompts, num_return_sequences, temperature)
        return [[f'{completion} He said "so"], [\nthen' for completion in group] for group in groups]


def test_awkward_rationales_survive_a_kill_and_resume(tmp_path):
    questions = Dataset("train").data[:6]
    progress = tmp_path / "rft.json.partial"
    with pytest.raises(KeyboardInterrupt):
        datagen.sample_rationales(AwkwardSampler(questions, crash_after=1), questions, 2, 0.7, progress, chunk=3)
    saved = json.loads(progress.read_text())  # still valid JSON
    assert len(saved) == 3 and all('"], [\n' in r for _, r, _ in saved.values() if r)
    results = datagen.sample_rationales(AwkwardSampler(questions), questions, 2, 0.7, progress, chunk=3)
    rows = [[q, a, r] for q, (a, r, _) in results.items() if r is not None]
    data.write_json(tmp_path / "rft.json", rows)
    assert json.loads((tmp_path / "rft.json").read_text()) == rows and len(rows) == 3


def test_atomic_write_leaves_the_old_file_on_a_crash(tmp_path, monkeypatch):
    path = tmp_path / "rft.json"
    data.write_json(path, [["q", 1.0, "r"]])

    def crash(*args):
        raise OSError("disk died")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        data.write_json(path, [["q", 2.0, "r"]] * 1000)
    assert json.loads(path.read_text()) == [["q", 1.0, "r"]]


def test_examples_pair_the_cot_prompt_with_the_rationale(tiny_model, tokenizer):
    model = rft.RFTModel(model=tiny_model, tokenizer=tokenizer)
    (q0, a0), (q1, a1) = Dataset("train").data[:2]
    examples = rft.examples_from(model, [[q0, a0, "1 x = 2 y. <answer>2</answer>"], [q1, a1, "r"]])
    assert examples == [(model.format_prompt(q0), "1 x = 2 y. <answer>2</answer>", []), (model.format_prompt(q1), "r", [])]
    worked = "1 x = 2 y. 3 * 2 = 6. <answer>6</answer>"  # for a model that will run with the calculator
    assert rft.examples_from(model, [[q0, a0, worked]], calculator=True)[0][2] == [(worked.index("= 6") + 1, worked.index(". <"))]
    prompt = examples[0][0]
    assert prompt.rstrip().endswith("assistant") and prompt.count(q0) == 1  # worked examples, never its own answer


def test_rft_trains_and_reloads_on_a_tiny_model(tmp_path, tiny_base, fp32_policy):
    rows = [[q, a, worked(a)] for q, a in Dataset("train").data[:4]]
    data = tmp_path / "rft.json"
    data.write_text(json.dumps(rows))
    out = tmp_path / "rft_model"
    rft.train(str(out), str(data), max_question=0, checkpoint=str(tiny_base), max_steps=2, batch_size=2)
    from peft import PeftModel
    from safetensors.torch import load_file

    unmerged = lora.load_adapter(out, rft.RFTModel, merge=False)
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


def test_init_adapter_trains_on_from_the_saved_adapter(tmp_path, tiny_base, fp32_policy):
    from safetensors.torch import load_file

    rows = [[q, a, worked(a)] for q, a in Dataset("train").data[:4]]
    data = tmp_path / "rft.json"
    data.write_text(json.dumps(rows))
    first, still, moved = tmp_path / "first", tmp_path / "still", tmp_path / "moved"
    rft.train(str(first), str(data), max_question=0, checkpoint=str(tiny_base), max_steps=2, batch_size=2, lora_r=4, learning_rate=1e-2)
    for out, lr in ((still, 0.0), (moved, 1e-2)):
        rft.train(str(out), str(data), max_question=0, checkpoint=str(tiny_base), max_steps=2, batch_size=2,
                  init_adapter=str(first), learning_rate=lr)
    saved = {name: load_file(path / "adapter_model.safetensors") for name, path in (("first", first), ("still", still), ("moved", moved))}
    assert json.loads((still / "adapter_config.json").read_text())["r"] == 4  # the first adapter's rank, not the default
    # With no learning it saves the adapter it started from (a fresh LoRA has B = 0 and a random A) ...
    assert set(saved["still"]) == set(saved["first"]) and all(torch.equal(saved["still"][n], t) for n, t in saved["first"].items())
    assert any(t.abs().sum() > 0 for n, t in saved["first"].items() if "lora_B" in n)
    # ... and with learning it moves on from there.
    assert any(not torch.equal(saved["moved"][n], t) for n, t in saved["first"].items())


def test_init_adapter_needs_an_adapter(tmp_path, tiny_base):
    data = tmp_path / "rft.json"
    data.write_text(json.dumps([[q, a, worked(a)] for q, a in Dataset("train").data[:2]]))
    with pytest.raises(loader.CheckpointError, match="no adapter in"):
        rft.train(str(tmp_path / "m"), str(data), max_question=0, checkpoint=str(tiny_base), init_adapter=str(tmp_path))


def test_rft_without_data_is_a_clear_error(tmp_path):
    with pytest.raises(loader.CheckpointError, match="run python -m homework.datagen"):
        rft.train(str(tmp_path / "m"), str(tmp_path / "missing.json"))


@pytest.mark.slow
def test_datagen_end_to_end_on_three_questions(tmp_path, monkeypatch):
    out = tmp_path / "rft.json"
    monkeypatch.setenv(loader.ENV_VAR, "embedded")
    datagen.generate_dataset(str(out), oversample=2, temperature=0.7, max_question=3)
    rows = json.loads(out.read_text())
    truth = dict(Dataset("train").data[:3])
    assert not (tmp_path / "rft.json.partial").exists()
    for q, a, reasoning in rows:
        assert truth[q] == a and datagen.select(a, [reasoning]) == reasoning


def test_expert_iteration_samples_the_uncovered_questions_between_rounds(tmp_path, tiny_base, monkeypatch):
    train = Dataset("train").data
    rows = [[q, a, worked(a)] for q, a in train[:3]]
    data = tmp_path / "rft.json"
    data.write_text(json.dumps(rows))
    sampled = []

    def fake_sample(model, questions, oversample, temperature, rationalize):
        sampled.extend(questions)
        assert isinstance(model, rft.RFTModel) and oversample == 2 and rationalize
        q, a = questions[0]  # one new verified rationale, one question still without
        return {q: [a, worked(a), 1], questions[1][0]: [questions[1][1], None, 0]}

    monkeypatch.setattr(rft, "sample_rationales", fake_sample)
    rft.train(str(tmp_path / "m"), str(data), rounds=2, oversample=2, resample_limit=2, rationalize=True,
              max_question=0, checkpoint=str(tiny_base), max_steps=2, batch_size=2)
    assert [list(x) for x in sampled] == train[3:5]  # the first training questions that had no rationale
    (q, a) = train[3]
    assert json.loads((tmp_path / "rft.round2.json").read_text()) == rows + [[q, a, worked(a)]]
    assert json.loads(data.read_text()) == rows  # the input data is left as it was
    assert (tmp_path / "m" / "adapter_config.json").is_file()


def test_datagen_extend_samples_only_uncovered_questions_with_the_adapter(tmp_path, monkeypatch):
    train = Dataset("train").data
    out = tmp_path / "rft.json"
    rows = [[q, a, worked(a)] for q, a in train[:2]]
    out.write_text(json.dumps(rows))
    loaded, sampled = [], []
    monkeypatch.setattr(datagen, "load_adapter", lambda path, model_class, calculator: loaded.append(path) or "the RFT model")

    def fake_sample(model, questions, oversample, temperature, progress, rationalize, save_every, desc):
        assert model == "the RFT model" and rationalize
        sampled.extend(questions)
        (q, a), (q2, a2) = questions
        return {q: [a, worked(a), 1], q2: [a2, None, 0]}

    monkeypatch.setattr(datagen, "sample_rationales", fake_sample)
    datagen.generate_dataset(str(out), oversample=2, max_question=4, adapter="some/adapter", extend=True, rationalize=True)
    assert loaded == ["some/adapter"] and [list(x) for x in sampled] == train[2:4]
    (q, a) = train[2]
    assert json.loads(out.read_text()) == rows + [[q, a, worked(a)]]


def test_show_brackets_the_rationale_and_nothing_of_the_prompt(tmp_path, tiny_base, capsys):
    (q, a), = Dataset("train").data[:1]
    data = tmp_path / "rft.json"
    data.write_text(json.dumps([[q, a, worked(a)]]))
    rft.show(0, str(data), str(tiny_base))
    out = capsys.readouterr().out
    trained = "".join(re.findall(r"\[(.*?)\]", out, flags=re.S))
    assert trained == worked(a) + "<|im_end|>"  # the rationale and EOS
    assert out.startswith("<|im_start|>system") and f"{q}<|im_end|>" in out


def sample_everything(monkeypatch) -> list:
    """datagen with the base CoT model faked, and a sampler that gets every question right: the questions it
    was asked, in order."""
    sampled = []
    monkeypatch.setattr(datagen, "RFTModel", lambda checkpoint, calculator: "the CoT model")

    def fake_sample(model, questions, oversample, temperature, progress, rationalize, save_every, desc):
        sampled.extend(questions)
        return {q: [a, worked(a), 1] for q, a in questions}

    monkeypatch.setattr(datagen, "sample_rationales", fake_sample)
    return sampled


def test_datagen_more_wordings_samples_each_question_in_other_words_too(tmp_path, monkeypatch):
    train = Dataset("train").data
    sampled = sample_everything(monkeypatch)
    out = tmp_path / "rft.json"
    datagen.generate_dataset(str(out), oversample=2, max_question=3, more_wordings=2, seed=4)
    originals, others = [tuple(x) for x in train[:3]], sampled[3:]
    assert [tuple(x) for x in sampled[:3]] == originals and len(others) >= 4
    assert [list(x) for x in others] == generator.reword(train[:3], seed=4, copies=2)
    assert [row[:2] for row in json.loads(out.read_text())] == [list(x) for x in sampled]


def test_datagen_grid_samples_each_pair_at_the_quantities_no_row_asks(tmp_path, monkeypatch):
    train = Dataset("train").data
    out = tmp_path / "rft.json"
    rows = [[q, a, worked(a)] for q, a in train[:2]]
    out.write_text(json.dumps(rows))
    sampled = sample_everything(monkeypatch)
    datagen.generate_dataset(str(out), oversample=2, max_question=3, extend=True, grid=True, seed=2)
    assert [list(x) for x in sampled] == [train[2]] + generator.on_grid(train[:3], seed=2)  # the uncovered row, then the grid
    assert len(sampled) > 3 and json.loads(out.read_text())[:2] == rows


def test_datagen_thousands_samples_each_pair_at_that_many_thousands(tmp_path, monkeypatch):
    train = Dataset("train").data
    sampled = sample_everything(monkeypatch)
    datagen.generate_dataset(str(tmp_path / "rft.json"), oversample=2, max_question=3, grid=True, thousands=2, seed=5)
    small = generator.on_grid(train[:3], seed=5)
    assert [list(x) for x in sampled] == train[:3] + small + generator.on_grid(train[:3] + small, generator.THOUSANDS, 5, per_pair=2)
    thousands = [reader.read_question(q) for q, _ in sampled[3 + len(small):]]
    assert len(thousands) == 2 * len({reader.read_question(q).units for q, _ in train[:3]})  # two for each pair
    assert all(r.n in generator.THOUSANDS for r in thousands)


@pytest.mark.parametrize("max_question", [0, -1, "abc"])
def test_datagen_refuses_a_count_that_is_not_one_or_more(max_question, tmp_path):
    out = tmp_path / "rft.json"
    out.write_text('[["q", 1.0, "r"]]')
    with pytest.raises(loader.CheckpointError, match="--max_question takes a count of 1 or more"):
        datagen.generate_dataset(str(out), max_question=max_question)
    assert out.read_text() == '[["q", 1.0, "r"]]'  # left as it was


@pytest.mark.parametrize("save_every, saves", [(1e-9, 5), (1e9, 2)])
def test_progress_is_saved_about_every_save_every_seconds(tmp_path, monkeypatch, save_every, saves):
    # The first chunk fills a CPU batch (64 rows: one question at 64 samples); the next ones take about save_every
    # seconds at the pace measured: every question when that is no time at all, all the rest when it is forever.
    questions = [(f"How many gram are there per {n} kg?", 1000.0 * n) for n in range(1, 6)]
    written = []
    monkeypatch.setattr(datagen, "write_json", lambda path, rows: written.append(len(rows)))
    results = datagen.sample_rationales(FakeSampler(questions), questions, 64, 0.7, tmp_path / "progress.json", save_every=save_every)
    assert len(results) == 5 and written[-1] == 5 and len(written) == saves


def test_datagen_into_a_folder_it_cannot_write_is_refused_before_a_model_loads(tmp_path, monkeypatch):
    (tmp_path / "a_file").write_text("")
    monkeypatch.setattr(datagen, "RFTModel", lambda *args, **kwargs: pytest.fail("a model was loaded"))
    with pytest.raises(loader.CheckpointError, match="can't write .*a_file/rft.json"):
        datagen.generate_dataset(str(tmp_path / "a_file" / "rft.json"), max_question=2)
