import inspect

import pytest
import torch

from homework import cot, rft
from homework.base_llm import BaseLLM
from homework.engine.calculator import Forcing, completion, evaluate


@pytest.mark.parametrize("text, written", [
    ("1 kg = 1000 g. 6 * 1000 =", " 6000"),  # the product after the factor, a space written for it
    ("6 * 1000 = ", "6000"),  # the model wrote the space itself
    ("7.2 * 1.609 =", " 11.5848"),  # fmt: 6 significant digits
    ("1,500 * 0.4536 =", " 680.4"),  # a thousands separator
    ("2.5e3 x 2 =", " 5000"),  # an exponent, x for times
    ("3 × 0.5=", " 1.5"),
    ("10^3 =", " 1000"), ("2 ** 10 =", " 1024"),  # powers
    ("1000 / 8 =", " 125"), ("10 / 3 =", " 3.33333"),  # division
    ("2 + 3 * 4 =", " 14"), ("5 - 7 =", " -2"),  # precedence, a negative result
    ("6 * 1000 = 60", "00"),  # the model has started the result: the rest of it
    ("6 * 1000 =6", "000"),
    ("1 kg =", None),  # a = that is not arithmetic: it states a factor
    ("1000 g = 35.27 oz. 2.5 * 35.27 =", " 88.175"),  # the factor statement before it is not part of the expression
    ("16 * 2 = 32", None),  # already complete
    ("16 * 2 = 33", None),  # digits that are not the result: left as the model wrote them
    ("6 * 1000 = 6000.", None),  # the model has gone on
    ("6000 =", None),  # a number alone is no expression
    ("7 / 0 =", None), ("10 ** 1000 =", None),  # no result
    ("x * 3 =", None), ("kg2 * 3 =", None),  # no number before the operator
    ("", None),
])
def test_completion(text, written):
    assert completion(text) == written


@pytest.mark.parametrize("expression, value", [
    ("7.2 * 1.609", 11.5848), ("1,500 / 3", 500), ("-3 * 2", -6), (".5 * 4", 2), ("1e3 * 2", 2000),
    ("__import__('os')", None), ("2 ** 1000", None), ("1e308 * 10", None), ("3 *", None),
])
def test_evaluate(expression, value):
    assert evaluate(expression) == (None if value is None else pytest.approx(value))


SCRIPT = "6 * 1000 = 5555. <answer>6000</answer>"  # the model's own product (5555) is wrong


def scripted(tiny_model, tokenizer, prompt_length: int, text: str = SCRIPT) -> list:
    """Make the tiny model write `text`, whatever it was given: each row's next token is the text's at that row's
    position, and a space its second choice. Returns a list that gets one entry a forward call."""
    script = tokenizer(text, add_special_tokens=False)["input_ids"]
    space, = tokenizer(" ", add_special_tokens=False)["input_ids"]
    original, calls = tiny_model.forward, []

    def forward(*args, **kwargs):
        out = original(*args, **kwargs)
        step = kwargs["position_ids"][:, -1] - (prompt_length - 1)
        out.logits[:, -1, :] = -1e9
        out.logits[:, -1, space] = -30  # never sampled beside the script token, chosen where that is banned
        for row, i in enumerate(step.tolist()):
            out.logits[row, -1, script[min(i, len(script) - 1)]] = 0
        calls.append(len(step))
        return out

    tiny_model.forward = forward
    return calls


PROMPTS = ["Hi there a", "Hi there b", "Hi there c"]


@pytest.mark.parametrize("calculator, expected", [(False, SCRIPT), (True, SCRIPT.replace("5555", "6000"))])
def test_the_decoder_writes_the_result_after_an_expression(tiny_model, tokenizer, calculator, expected):
    # Three prompts, two samples each, two rows at a time: every row is forced on its own, as rows come and go.
    lengths = {len(ids) for ids in tokenizer(PROMPTS)["input_ids"]}
    assert len(lengths) == 1  # the script is read off the position, so the prompts are of one length
    llm = BaseLLM(model=tiny_model, tokenizer=tokenizer, calculator=calculator)
    llm.max_new_tokens, llm.batch_size = 40, 1
    calls = scripted(tiny_model, tokenizer, lengths.pop())
    assert llm.batched_generate(PROMPTS, num_return_sequences=2, temperature=1.0) == [[expected] * 2] * 3
    # one forward call a token, forced or not (the last token needs none): no step is added for the calculator
    tokens = len(tokenizer(expected, add_special_tokens=False)["input_ids"])
    assert sum(calls) == 3 * 2 * (tokens - 1) + 3  # each prompt's prefill is one row, then two rows a step


def test_the_pure_model_is_the_default():
    # the course grades the model: load_cot() and load_rft() with no arguments compute everything themselves
    for command in (BaseLLM.__init__, cot.load, rft.load, cot.test, cot.ask, rft.test, rft.ask):
        assert inspect.signature(command).parameters["calculator"].default is False


def test_a_forced_token_replaces_the_sampled_one(tokenizer):
    forcing = Forcing(tokenizer)
    forcing.queued = {4: ([7, 8], False), 9: ([5], False)}
    assert forcing.force(torch.tensor([1, 2, 3]), [4, 6, 9]).tolist() == [7, 2, 5]
    assert forcing.queued == {4: ([8], False), 9: ([], False)}


@pytest.mark.parametrize("script, written", [
    ("8 * 0.125 = 1.25. <answer>1.25</answer>", "8 * 0.125 = 1. 5"),  # "= 1" may not become "= 1.25": a space, not the 2
    ("1 * 1000 = 10000. <answer>1</answer>", "1 * 1000 = 1000 ."),  # nor "= 1000" "= 10000"
    ("5 * 453.6 = 2268.0. <answer>2268</answer>", "5 * 453.6 = 2268.0. <answer>2268</answer>"),  # zeros after a point
    ("2 * 0.25 = 0.50. <answer>0.5</answer>", "2 * 0.25 = 0.50. <answer>0.5</answer>"),
])
def test_no_digit_changes_a_result(script, written, tiny_model, tokenizer):
    lengths = {len(ids) for ids in tokenizer(PROMPTS)["input_ids"]}
    llm = BaseLLM(model=tiny_model, tokenizer=tokenizer, calculator=True)
    llm.max_new_tokens = 30
    scripted(tiny_model, tokenizer, lengths.pop(), script)
    text = llm.batched_generate(PROMPTS[:1])[0]
    assert text.startswith(written) and (written != script or text == script), text
