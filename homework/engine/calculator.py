"""A calculator inside generation: when a row has just written an arithmetic expression and `=`, the decoder
works the result out and writes its digits as that row's next tokens; the model then goes on.

    "1 mi = 1.609 km. 7.2 * 1.609 ="  ->  the decoder writes " 11.5848", the model writes ". <answer>..."

The model still chooses the factor and what to multiply; only the product is exact. It is the GSM8K sampler's
calculator (at `<<48/2=` it writes `24>>`) without the markers: our rationales already write each product as
`a * b = c`. `completion` is a pure function of the text so far; `Forcing` is its state inside `BaseLLM`'s decode loop
(calculator=True), which calls it at each `=`.
"""

import ast
import functools
import math
import operator
import re

import torch

from ..units.numbers import NUMBER as _NUMBER, fmt

_OPERATOR = r"\*\*|[-+*/x×^]"
# The expression right before the last `=`, then what follows it so far: spaces, and digits already written.
# It starts at a number (not inside one, nor after a unit's letters: "1 kg =" states a factor, not a sum).
_TAIL = re.compile(rf"(?<![\w.,])(-?{_NUMBER}(?:\s*(?:{_OPERATOR})\s*-?{_NUMBER})+)\s*=(\s*)([\d.,]*)$")
_OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


def evaluate(expression: str) -> float | None:
    """The value of `expression` ("7.2 * 1.609", "1,500 / 3", "2.5e3 x 2", "10^3"), or None: anything but numbers
    and + - * / ** (x, × and ^ read as * and **), a division by zero, an exponent over 100, a result not finite."""
    expression = re.sub(r"(?<=\d),(?=\d)", "", expression).replace("×", "*").replace("x", "*").replace("^", "**")
    try:
        tree = ast.parse(expression, mode="eval").body
    except SyntaxError:
        return None

    def value(node) -> float:
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return float(node.value)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](value(node.operand))
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            left, right = value(node.left), value(node.right)
            if isinstance(node.op, ast.Pow) and abs(right) > 100:
                raise ValueError("exponent too large")
            return _OPERATORS[type(node.op)](left, right)
        raise ValueError(f"not arithmetic: {ast.dump(node)}")

    try:
        result = value(tree)
    except (ValueError, ZeroDivisionError, OverflowError):
        return None
    return result if isinstance(result, float) and math.isfinite(result) else None


def completion(text: str) -> str | None:
    """What the calculator writes after `text`: the rest of the result when `text` ends with an arithmetic
    expression, `=` and at most the start of its result ("6 * 1000 =" -> " 6000", "6 * 1000 = 60" -> "00"). None
    when there is nothing to write: no expression, a `=` that is not arithmetic ("1 kg ="), a result already
    complete, or digits that are not the start of the result (the model's own answer is left as it wrote it)."""
    match = _TAIL.search(text)
    if match is None or (result := evaluate(match.group(1))) is None:
        return None
    spaces, written, result = match.group(2), match.group(3), fmt(result)
    if not written:
        return result if spaces else " " + result
    return result[len(written) :] if result.startswith(written) and result != written else None


@functools.cache
def token_kinds(tokenizer) -> tuple[frozenset[int], torch.Tensor, torch.Tensor]:
    """The vocabulary's tokens that hold "=", those that start with a digit, and those of them that are not all
    zeros: decoded once per tokenizer."""
    texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
    digits = [i for i, text in enumerate(texts) if text[:1].isdigit()]
    ids = lambda tokens: torch.tensor(tokens, dtype=torch.long)
    return (
        frozenset(i for i, text in enumerate(texts) if "=" in text),
        ids(digits),
        ids([i for i in digits if texts[i].strip("0")]),
    )


class Forcing:
    """The calculator inside one generation, for each output row: the result tokens it writes next (one a decode
    step, in place of the sampled token: a forced token costs no step of its own); then, while the model has added
    nothing to the result but a point and zeros, no digit that would change its value (the model made "= 1" into
    "= 1.25" and "= 1000" into "= 10000"; "= 2268" may become "= 2268.0")."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.equals, self.digits, self.nonzero = token_kinds(tokenizer)
        self.queued: dict[
            int, tuple[list[int], bool]
        ] = {}  # row -> the result's tokens still to write, whether it has a point
        self.closed: dict[int, tuple[int, bool, bool]] = {}  # row -> its length at the result's end, whether the result
        #   has a point, whether the number has one now (then zeros may follow)

    def mask(self, logits: torch.Tensor, running: list[int]) -> torch.Tensor:
        rows = {False: [], True: []}  # by whether the number has a point
        for i, row in enumerate(running):
            if row in self.closed:
                rows[self.closed[row][2]].append(i)
        if not rows[False] and not rows[True]:
            return logits
        logits = logits.clone()
        for point, banned in ((False, self.digits), (True, self.nonzero)):
            if rows[point]:
                logits[torch.tensor(rows[point], device=logits.device)[:, None], banned.to(logits.device)] = -math.inf
        return logits

    def force(self, tokens: torch.Tensor, running: list[int]) -> torch.Tensor:
        if not self.queued:
            return tokens
        tokens = tokens.clone()
        for i, row in enumerate(running):
            if (queue := self.queued.get(row)) and queue[0]:
                tokens[i] = queue[0].pop(0)
        return tokens

    def update(self, running: list[int], outputs: list[list[int]]):
        """After a step's tokens are written: a written result closes; a closed one opens at anything but a point and
        zeros; and each row whose newest token holds `=` after an arithmetic expression has its result queued."""
        for row in running:
            if row in self.queued and not self.queued[row][0]:
                point = self.queued.pop(row)[1]
                self.closed[row] = (len(outputs[row]), point, point)
            elif row in self.closed:
                end, point, _ = self.closed[row]
                added = self.tokenizer.decode(outputs[row][end:])
                if re.fullmatch(r"0*" if point else r"(\.0*)?", added):
                    self.closed[row] = (end, point, point or "." in added)
                else:
                    del self.closed[row]
        rows = [row for row in running if row not in self.queued and outputs[row][-1] in self.equals]
        for row, text in zip(
            rows, self.tokenizer.batch_decode([outputs[row] for row in rows], skip_special_tokens=True)
        ):
            if written := completion(text):
                self.queued[row] = (
                    self.tokenizer(written, add_special_tokens=False)["input_ids"],
                    "." in text[text.rindex("=") + 1 :] + written,
                )
