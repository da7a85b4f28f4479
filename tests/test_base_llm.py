import os

import pytest
import torch
from transformers import DynamicCache

from homework import settings
from homework.base_llm import BaseLLM
from homework.engine.batching import Engine, chunk
from homework.engine.kv_cache import left_aligned, stems

# Very different lengths, so the batch needs a lot of left padding.
PROMPTS = [
    "Hi",
    "How many gram are there per 6 kg?",
    "Convert the measurement of 6 l into cm^3. Think step by step, then put the result in answer tags.",
    "What does 8 KB equal in byte terms?",
]


@pytest.mark.parametrize("stop", [True, False], ids=["stop at </answer>", "no stop string"])
def test_the_homework_path_and_the_engine_write_the_same_tokens(tiny_model, tokenizer, stop):
    # Greedy decoding in fp32: model.generate on left-padded prompts, and the engine, prompt by prompt and batched.
    engine, homework = BaseLLM(model=tiny_model, tokenizer=tokenizer), BaseLLM(model=tiny_model, tokenizer=tokenizer)
    homework.engine = False
    for llm in (engine, homework):
        llm.max_new_tokens = 12
        if stop:  # a string that a completion writes early, as "</answer>" ends an answer
            first = tokenizer(engine.generate(PROMPTS[0]), add_special_tokens=False)["input_ids"]
            llm.stop_strings = [tokenizer.decode(first[2:4])]
        else:
            llm.stop_strings = []
    assert tiny_model.dtype == torch.float32
    assert homework.batched_generate(PROMPTS) == engine.batched_generate(PROMPTS)
    assert [homework.generate(p) for p in PROMPTS] == engine.batched_generate(PROMPTS)
    assert homework.batched_generate(PROMPTS, num_return_sequences=2) == [[t] * 2 for t in engine.batched_generate(PROMPTS)]
    if stop:
        assert len(engine.generate(PROMPTS[0])) < len(BaseLLM(model=tiny_model, tokenizer=tokenizer).generate(PROMPTS[0]))


def test_the_homework_path_samples_num_return_sequences_per_prompt(tiny_model, tokenizer):
    llm = BaseLLM(model=tiny_model, tokenizer=tokenizer)
    llm.engine, llm.max_new_tokens, llm.batch_size = False, 6, 2  # two calls of model.generate
    torch.manual_seed(0)
    groups = llm.batched_generate(PROMPTS[:3], num_return_sequences=4, temperature=1.0)
    assert [len(g) for g in groups] == [4, 4, 4] and all(isinstance(t, str) for g in groups for t in g)
    assert len({t for g in groups for t in g}) > 3  # samples, not one greedy completion repeated


def test_the_engine_switch_is_read_when_generating(tiny_model, tokenizer, monkeypatch):
    llm = BaseLLM(model=tiny_model, tokenizer=tokenizer)
    llm.max_new_tokens = 4
    monkeypatch.setattr(llm, "engine_generate", lambda *args, **kwargs: pytest.fail("the engine ran"))
    monkeypatch.setenv(settings.ENGINE, "OFF")  # set after the model was made, in capitals
    assert isinstance(llm.generate(PROMPTS[0]), str)
    monkeypatch.setenv(settings.ENGINE, "sideways")
    with pytest.raises(settings.UsageError, match="HOMEWORK_ENGINE='sideways': use on or off"):
        llm.generate(PROMPTS[0])


def test_batched_greedy_equals_sequential(tiny_model, tokenizer):
    llm = BaseLLM(model=tiny_model, tokenizer=tokenizer)
    llm.max_new_tokens = 12
    sequential = [llm.generate(p) for p in PROMPTS]
    assert llm.batched_generate(PROMPTS) == sequential
    assert len(set(sequential)) > 1  # the prompts really lead somewhere different


def test_a_shared_prefix_runs_once_and_changes_no_token(tiny_model, tokenizer):
    # A few-shot prompt's system line is the same in every prompt: it is prefilled once, as one row, and
    # each prompt's prefill runs only the rest, with the same greedy completions as each prompt alone.
    llm = BaseLLM(model=tiny_model, tokenizer=tokenizer)
    llm.max_new_tokens = 10
    system = "You convert units. State the factor, multiply, and give the number in answer tags, nothing else."
    prompts = [f"{system}\n{p}" for p in PROMPTS]
    sequential = [llm.generate(p) for p in prompts]  # one prompt alone shares nothing
    ids = tokenizer(prompts)["input_ids"]
    shared = len(os.path.commonprefix(ids))
    assert shared >= 16

    assert llm.batched_generate(prompts) == sequential
    assert llm.tokens_processed["prefill"] == shared + sum(len(p) - shared for p in ids)  # the prefix counted once
    assert len(set(sequential)) > 1


def test_a_stem_that_some_prompts_share_runs_once_and_changes_no_token(tiny_model, tokenizer):
    # Two unit pairs, two questions each: the prompts of a pair share their worked examples past the system line that
    # all four share. Each pair's examples run once (its stem), and each prompt then runs only its question, with the
    # same greedy completions as each prompt alone.
    llm = BaseLLM(model=tiny_model, tokenizer=tokenizer)
    llm.max_new_tokens = 10
    system = "You convert units. State the factor, multiply, and give the number in answer tags, nothing else."
    examples = {"kg": " 1 kg = 1000 gram. 2 * 1000 = 2000. 3 * 1000 = 3000. 4 * 1000 = 4000. 5 * 1000 = 5000.",
                "mile": " 1 mile = 1.609 km. 2 * 1.609 = 3.218. 3 * 1.609 = 4.827. 4 * 1.609 = 6.436."}
    prompts = [f"{system}{examples[unit]}\n{q}" for unit, q in [("kg", "How many gram in 6 kg?"), ("mile", "Miles 7 to km?"),
                                                                  ("kg", "What is 9 kg in gram?"), ("mile", "How far is 8 miles in km?")]]
    sequential = [llm.generate(p) for p in prompts]
    ids = tokenizer(prompts)["input_ids"]
    shared = len(os.path.commonprefix(ids))
    lengths = stems(ids, shared)
    assert lengths[0] == lengths[2] > shared + 16 and lengths[1] == lengths[3] > shared + 16  # two stems, past the system line
    assert lengths[0] == len(os.path.commonprefix([ids[0], ids[2]])) and lengths[1] == len(os.path.commonprefix([ids[1], ids[3]]))

    assert llm.batched_generate(prompts) == sequential
    stem_tokens = (lengths[0] - shared) + (lengths[1] - shared)
    rests = sum(len(p) - length for p, length in zip(ids, lengths))
    assert llm.tokens_processed["prefill"] == shared + stem_tokens + rests < sum(map(len, ids))
    assert len(set(sequential)) > 1
    llm.batch_size = 1  # admitted one by one: a stem outlives its first prompt, and each row joins a running batch
    assert llm.batched_generate(prompts) == sequential
    assert llm.tokens_processed["prefill"] == shared + stem_tokens + rests


def test_left_aligned_moves_each_rows_tokens_to_its_end():
    # two rows after a prefix: padding before the prefix (row 1) and between it and the rest (both)
    mask = torch.tensor([[1, 1, 0, 1, 1], [0, 1, 0, 0, 1]])
    keys = torch.arange(10.0).view(2, 1, 5, 1)
    cache = DynamicCache()
    cache.update(keys, -keys, 0)
    cache, mask = left_aligned(cache, mask)
    assert mask.tolist() == [[1, 1, 1, 1], [0, 0, 1, 1]]  # as wide as the longest row, padding on the left
    keys = cache.layers[0].keys.flatten(1)
    assert keys.tolist() == [[0, 1, 3, 4], [7, 8, 6, 9]]  # row 1's tokens 6 and 9 at its end, in order, after padding
    assert torch.equal(cache.layers[0].values.flatten(1), -keys)  # the values move with their keys


def test_stems_take_the_run_that_saves_most():
    system = list(range(100, 120))
    a, b = list(range(200, 240)), list(range(300, 330))
    prompts = [system + a + [1], system + a + [2], system + b + [3], system + b + [4, 5], system + [6], system + a[:5] + [7]]
    # a's prompts share 60 tokens, b's 50; the fifth shares only the system line, and the last 25 tokens with a's
    # prompts: apart, a's second prompt skips a's 40 tokens; together, two prompts would skip 5 each
    assert stems(prompts, shared=20) == stems(prompts, shared=20, min_tokens=1) == [60, 60, 50, 50, 0, 0]
    assert stems(prompts, shared=20, min_tokens=35) == [60, 60, 0, 0, 0, 0]  # b's 30 past the system line are too few
    near = system + a[:38] + [5]  # shares 58 with a's prompts: together two prompts skip 38 each, more than a's 40 apart
    assert stems(prompts[:2] + [near], shared=20) == [58, 58, 58]
    assert stems([system + [1], system + [1]], shared=0) == [20, 20]  # each keeps a token of its own to predict from
    assert stems([], shared=0) == [] and stems([system], shared=0) == [0]


def test_a_chunk_holds_as_many_prompts_as_the_budget_allows():
    assert chunk([50, 30, 60, 10], budget=120) == 2  # a third would pad to 60: 180 tokens
    assert chunk([50, 30, 60, 10], budget=None) == 4
    assert chunk([500, 10], budget=120) == 1  # always at least one


def test_micro_batches_keep_the_callers_order(tiny_model, tokenizer, monkeypatch):
    llm = BaseLLM(model=tiny_model, tokenizer=tokenizer)
    llm.max_new_tokens = 6
    whole = llm.batched_generate(PROMPTS)
    llm.batch_size = 1
    assert llm.batched_generate(PROMPTS) == whole


def test_a_prompt_starts_as_soon_as_a_row_is_free(tiny_model, tokenizer):
    # Two prompts at a time, and the longest (it starts first) stops after a few tokens: the next prompt
    # must start while the other first one is still decoding, with every completion as if run alone.
    llm = BaseLLM(model=tiny_model, tokenizer=tokenizer)
    llm.max_new_tokens, llm.stop_strings, llm.batch_size = 12, [], 2
    first = tokenizer(llm.generate(PROMPTS[2]), add_special_tokens=False)["input_ids"]
    llm.stop_strings = [tokenizer.decode(first[1:3]).strip() or tokenizer.decode(first[1:4])]
    sequential = [llm.generate(p) for p in PROMPTS]
    assert llm.batched_generate(PROMPTS) == sequential


def test_a_long_prefill_runs_in_chunks_and_changes_no_token(tiny_model, tokenizer, monkeypatch):
    # The prompts admitted at once are prefilled in chunks of about cpu_prefill_tokens[dtype], with the completions
    # of one prefill.
    llm = BaseLLM(model=tiny_model, tokenizer=tokenizer)
    llm.max_new_tokens = 8
    monkeypatch.setattr(Engine, "cpu_prefill_tokens", {})  # all at once
    whole = llm.batched_generate(PROMPTS)
    budget = 2 * max(len(ids) for ids in tokenizer(PROMPTS)["input_ids"])
    monkeypatch.setattr(Engine, "cpu_prefill_tokens", {tiny_model.dtype: budget})
    assert llm.batched_generate(PROMPTS) == whole


def test_num_return_sequences_shapes(tiny_model, tokenizer):
    llm = BaseLLM(model=tiny_model, tokenizer=tokenizer)
    llm.max_new_tokens = 4
    flat = llm.batched_generate(PROMPTS[:3])
    assert isinstance(flat, list) and len(flat) == 3 and all(isinstance(s, str) for s in flat)
    nested = llm.batched_generate(PROMPTS[:3], num_return_sequences=5, temperature=1.0)
    assert len(nested) == 3 and all(len(group) == 5 and all(isinstance(s, str) for s in group) for group in nested)


def test_sampling_repeats_with_a_seed_and_varies_across_seeds(tiny_model, tokenizer):
    llm = BaseLLM(model=tiny_model, tokenizer=tokenizer)
    llm.max_new_tokens = 8

    def sample(seed):
        torch.manual_seed(seed)
        return llm.batched_generate(PROMPTS[:2], num_return_sequences=4, temperature=1.0)

    assert sample(1) == sample(1)
    assert sample(1) != sample(2)


def test_generation_stops_after_the_answer_closes(tiny_model, tokenizer):
    # Script the tiny model to write "<answer>1</answer>" and then "x" forever: one forward call per token.
    llm = BaseLLM(model=tiny_model, tokenizer=tokenizer)
    script = tokenizer("<answer>1</answer>" + "x" * 20, add_special_tokens=False)["input_ids"]
    original_forward, calls = tiny_model.forward, []

    def forward(*args, **kwargs):
        out = original_forward(*args, **kwargs)
        out.logits[:, -1, :] = -1e9
        out.logits[:, -1, script[len(calls)]] = 0
        calls.append(1)
        return out

    tiny_model.forward = forward
    llm.max_new_tokens = 20
    assert llm.generate("Hi") == "<answer>1</answer>"
    assert len(calls) < 20


def test_shared_prefill_samples_follow_the_model(tiny_model, tokenizer):
    # At a vanishing temperature every sample must be the greedy completion: this checks that the
    # prefilled, repeated cache (and its left-padding positions) is the prompt's real cache.
    llm = BaseLLM(model=tiny_model, tokenizer=tokenizer)
    llm.max_new_tokens = 10
    greedy = llm.batched_generate(PROMPTS)
    samples = llm.batched_generate(PROMPTS, num_return_sequences=3, temperature=1e-4)
    assert samples == [[g] * 3 for g in greedy]


def test_finished_rows_leave_the_batch_without_changing_the_others(tiny_model, tokenizer):
    llm = BaseLLM(model=tiny_model, tokenizer=tokenizer)
    llm.max_new_tokens, llm.stop_strings = 12, []
    full = [llm.generate(p) for p in PROMPTS]
    # A stop string that one completion writes early: that row must stop there and leave the batch.
    first = tokenizer(full[0], add_special_tokens=False)["input_ids"]
    llm.stop_strings = [tokenizer.decode(first[1:3]).strip() or tokenizer.decode(first[1:4])]
    sequential = [llm.generate(p) for p in PROMPTS]
    assert len(sequential[0]) < len(full[0])  # it did stop early

    assert llm.batched_generate(PROMPTS) == sequential
    # no decode step runs for a finished row: fewer tokens than every row running to the longest
    assert llm.tokens_processed["decode"] < len(PROMPTS) * (llm.max_new_tokens - 1)


def test_sampling_follows_the_models_top_k(tiny_model, tokenizer):
    llm = BaseLLM(model=tiny_model, tokenizer=tokenizer)
    llm.max_new_tokens = 8
    greedy = llm.batched_generate(PROMPTS)
    tiny_model.generation_config.top_k = 1  # only the most likely token may be drawn, at any temperature
    assert llm.batched_generate(PROMPTS, num_return_sequences=3, temperature=5.0) == [[g] * 3 for g in greedy]


@pytest.mark.parametrize("rows", [[0, 3, 5, 6], [0, 7, 2, 5], [6, 0, 3], [0, 7, 2, 6]])  # ascending, holes filled, any order
def test_row_cache_matches_dynamic_cache(tiny_model, tokenizer, rows):
    # The same decode steps, on HF's DynamicCache and on ours: prompts admitted with 2 rows each, rows
    # leaving in a new order, and (when the longest prompt, rows 4 and 5, has left) the padding trimmed.
    from transformers import DynamicCache

    from homework.engine.kv_cache import RowCache, cache_argument

    inputs = tokenizer(PROMPTS, padding=True, padding_side="left", return_tensors="pt").to(tiny_model.device)
    length, steps = inputs["input_ids"].shape[1], 4
    tokens = torch.randint(0, len(tokenizer), (len(PROMPTS) * 2, steps)).to(tiny_model.device)
    logits, trimmed = [], 0
    for ours in (False, True):
        cache = DynamicCache(config=tiny_model.config)
        with torch.no_grad():
            tiny_model(**inputs, **{cache_argument(tiny_model): cache}, use_cache=True)
            if ours:
                room = steps if {4, 5} & set(rows) else 2  # too little room unless padding can be trimmed
                cache, prefilled = RowCache(tiny_model, rows=8, columns=length + room), cache
                cache.admit(prefilled, repeats=2)
            else:
                cache.batch_repeat_interleave(2)
            cache.batch_select_indices(torch.tensor(rows, device=tiny_model.device))
            mask = inputs["attention_mask"].repeat_interleave(2, 0)[rows]
            out = []
            for i in range(steps):
                if ours:
                    width = mask.shape[1]
                    mask = cache.make_room(mask)
                    trimmed = max(trimmed, width - mask.shape[1])
                mask = torch.cat([mask, mask.new_ones(len(rows), 1)], dim=1)
                position = mask.sum(1, keepdim=True) - 1  # explicit: the cache's length no longer tells it
                out.append(tiny_model(input_ids=tokens[rows, i : i + 1], attention_mask=mask, position_ids=position,
                                      **{cache_argument(tiny_model): cache}, use_cache=True).logits)
        logits.append(torch.cat(out, dim=1))
    assert (trimmed > 0) == (not {4, 5} & set(rows))  # the shorter prompts share columns of padding
    exact = 2 if trimmed else steps  # the same numbers; after a trim, the attention sums fewer (masked) columns
    torch.testing.assert_close(logits[0][:, :exact], logits[1][:, :exact], rtol=0, atol=0)
    torch.testing.assert_close(logits[0], logits[1], rtol=1e-4, atol=1e-5)


def test_fill_holes_moves_only_rows_beyond_the_new_end():
    from homework.engine.kv_cache import fill_holes

    assert fill_holes([0, 2, 5, 6]) == [0, 5, 2, 6]  # rows 1 and 3 finished: 5 and 6 take their places
    assert fill_holes([0, 1, 2]) == [0, 1, 2]  # the last rows finished: nothing moves
    assert fill_holes([4, 7]) == [4, 7]
    assert fill_holes([]) == []


def test_tokens_processed_counts_what_the_model_ran(tiny_model, tokenizer):
    # The prompts' real tokens (no padding) and one token for each row at each decode step: a cost that two
    # machines can compare.
    llm = BaseLLM(model=tiny_model, tokenizer=tokenizer)
    llm.max_new_tokens = 6
    groups = llm.generate_ids(tokenizer(PROMPTS)["input_ids"], 2, temperature=1.0)
    assert llm.tokens_processed["prefill"] == sum(map(len, tokenizer(PROMPTS)["input_ids"]))
    # a row's first token comes from the prefill, each next one from a decode step of the token before it
    assert llm.tokens_processed["decode"] == sum(len(ids) - 1 for group in groups for ids in group) > 0
