import torch

from homework.base_llm import BaseLLM

# Very different lengths, so the batch needs a lot of left padding.
PROMPTS = [
    "Hi",
    "How many gram are there per 6 kg?",
    "Convert the measurement of 6 l into cm^3. Think step by step, then put the result in answer tags.",
    "What does 8 KB equal in byte terms?",
]


def test_batched_greedy_equals_sequential(tiny_model, tokenizer):
    llm = BaseLLM(model=tiny_model, tokenizer=tokenizer)
    llm.max_new_tokens = 12
    sequential = [llm.generate(p) for p in PROMPTS]
    assert llm.batched_generate(PROMPTS) == sequential
    assert len(set(sequential)) > 1  # the prompts really lead somewhere different


def test_micro_batches_keep_the_callers_order(tiny_model, tokenizer, monkeypatch):
    llm = BaseLLM(model=tiny_model, tokenizer=tokenizer)
    llm.max_new_tokens = 6
    whole = llm.batched_generate(PROMPTS)
    monkeypatch.setattr("homework.loader.micro_batch_size", lambda *a, **k: 1)
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

    original_forward, batch_sizes = tiny_model.forward, []

    def forward(*args, **kwargs):
        batch_sizes.append(kwargs["input_ids"].shape[0])
        return original_forward(*args, **kwargs)

    tiny_model.forward = forward
    assert llm.batched_generate(PROMPTS) == sequential
    assert batch_sizes[0] == len(PROMPTS) and batch_sizes[-1] < len(PROMPTS)
    assert batch_sizes == sorted(batch_sizes, reverse=True)


def test_sampling_follows_the_models_top_k(tiny_model, tokenizer):
    llm = BaseLLM(model=tiny_model, tokenizer=tokenizer)
    llm.max_new_tokens = 8
    greedy = llm.batched_generate(PROMPTS)
    tiny_model.generation_config.top_k = 1  # only the most likely token may be drawn, at any temperature
    assert llm.batched_generate(PROMPTS, num_return_sequences=3, temperature=5.0) == [[g] * 3 for g in greedy]


def test_buffered_cache_matches_dynamic_cache(tiny_model, tokenizer):
    from transformers import DynamicCache

    from homework.base_llm import cache_argument, kv_cache

    inputs = tokenizer(PROMPTS, padding=True, return_tensors="pt")
    tokens = torch.randint(0, len(tokenizer), (len(PROMPTS) * 2, 3))
    logits = []
    for cache in (DynamicCache(config=tiny_model.config), kv_cache(tiny_model, room=3)):
        with torch.no_grad():
            kwargs = {cache_argument(tiny_model): cache, "use_cache": True}
            tiny_model(**inputs, **kwargs)
            cache.batch_repeat_interleave(2)
            cache.batch_select_indices(torch.tensor([0, 3, 5, 6]))  # rows leave, in a new order
            mask = inputs["attention_mask"].repeat_interleave(2, 0)[[0, 3, 5, 6]]
            steps = []
            for i in range(3):
                mask = torch.cat([mask, mask.new_ones(4, 1)], dim=1)
                steps.append(tiny_model(input_ids=tokens[[0, 3, 5, 6], i : i + 1], attention_mask=mask, **kwargs).logits)
        logits.append(torch.cat(steps, dim=1))
    torch.testing.assert_close(logits[0], logits[1], rtol=0, atol=0)
