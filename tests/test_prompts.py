"""The prompts the shipped adapters were trained under, and CoT's, written out in full: a change to any of them changes
what the shipped models see, and they would have to be trained again."""
import pytest

from homework.cot import CoTModel
from homework.rft import RFTModel
from homework.sft import SFTModel

SYSTEM = ("<|im_start|>system\nYou convert units. Be concise: state how many of the target unit make one of the source "
          "unit, multiply, and give the number in <answer></answer> tags.<|im_end|>\n")


def turn(question: str, worked: str) -> str:
    return f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n{worked}<|im_end|>\n"


EXPECTED = {
    (SFTModel, "How many gram are there per 6 kg?"): "Convert 6 kilogram to gram.",
    (SFTModel, "What is 3.7 mile in km?"): "Convert 3.7 mile to kilometer.",
    (RFTModel, "How many gram are there per 6 kg?"): "Convert 6 kilogram to gram.",
    (RFTModel, "What is 3.7 mile in km?"): "Convert 3.7 mile to kilometer.",
    (CoTModel, "How many gram are there per 6 kg?"): SYSTEM + "".join(
        turn(f"How many gram are there per {n} kg?", f"1 kg = 1000 gram. {n} * 1000 = {n}000. <answer>{n}000</answer>")
        for n in (8, 10, 9, 4)) + "<|im_start|>user\nHow many gram are there per 6 kg?<|im_end|>\n<|im_start|>assistant\n",
    (CoTModel, "What is 3.7 mile in km?"): SYSTEM + "".join(
        turn(f"What is {n} mile in km?", f"1 mile = 1.609 km. {n} * 1.609 = {p}. <answer>{p}</answer>")
        for n, p in (("8.7", "13.998"), ("9.7", "15.607"), ("1.7", "2.7353"), ("4.7", "7.5623")))
        + "<|im_start|>user\nWhat is 3.7 mile in km?<|im_end|>\n<|im_start|>assistant\n",
}


@pytest.mark.parametrize("model_class, question", list(EXPECTED), ids=[f"{c.__name__}: {q}" for c, q in EXPECTED])
def test_each_model_sees_the_prompt_it_was_trained_or_tuned_under(model_class, question, tiny_model, tokenizer):
    llm = model_class(model=tiny_model, tokenizer=tokenizer)
    assert llm.format_prompt(question) == EXPECTED[model_class, question]
