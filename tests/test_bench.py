from homework.recipes import bench
from homework.base_llm import BaseLLM
from tests.test_base_llm import PROMPTS


def test_counted_adds_up_the_tokens_of_every_generation_it_made(tiny_model, tokenizer):
    llm = BaseLLM(model=tiny_model, tokenizer=tokenizer)
    llm.max_new_tokens = 6
    each = []
    for prompt in PROMPTS:
        llm.generate(prompt)
        each.append(dict(llm.tokens_processed))
    outputs, seconds, tokens = bench.counted(llm, lambda: [llm.generate(p) for p in PROMPTS])
    assert len(outputs) == len(PROMPTS)
    assert tokens == {key: sum(e[key] for e in each) for key in ("prefill", "decode")}
    assert tokens["prefill"] == sum(map(len, tokenizer(PROMPTS)["input_ids"]))  # one prompt alone shares nothing
    assert tokens["decode"] > 0
