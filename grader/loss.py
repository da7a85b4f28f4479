"""The course's generation loss, computed in the grader's parent from what a generation case sends.

The case's process tokenizes question + answer with the submission's tokenizer, runs the submission's model, and
sends the token ids, the attention mask and the logits, as data (cases.loss_inputs); the cross-entropy is computed
here, where no code of the submission runs, so patching torch in the case's process changes nothing.
"""
import numpy as np

DTYPES = {"bfloat16": np.uint16, "float16": np.float16, "float32": np.float32}  # bf16 travels as its 16 bits


class LossInputsError(ValueError):
    """Loss inputs that are not token ids, a mask and logits of matching shapes."""


def as_float32(rows: np.ndarray, dtype: str) -> np.ndarray:
    """Logits as sent, as float32: bf16's 16 bits are the top half of a float32's."""
    if dtype == "bfloat16":
        return (rows.astype(np.uint32) << 16).view(np.float32)
    return rows.astype(np.float32)


def read(inputs: dict, payload: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """(input ids, attention mask, logits as sent, their dtype), each checked against the others' shapes."""
    try:
        ids, mask = np.array(inputs["input_ids"], dtype=np.int64), np.array(inputs["attention_mask"], dtype=np.int64)
        shape, dtype = [int(n) for n in inputs["logits_shape"]], inputs["logits_dtype"]
    except (KeyError, TypeError, ValueError, OverflowError) as e:
        raise LossInputsError(f"the case's loss inputs could not be read ({type(e).__name__})") from None
    if dtype not in DTYPES:
        raise LossInputsError(f"the case's logits are {dtype!r}, not one of {', '.join(DTYPES)}")
    rows, length = ids.shape if ids.ndim == 2 else (0, 0)
    if mask.shape != ids.shape or length < 2 or len(shape) != 3 or shape[:2] != [rows, length - 1] or shape[2] < 1:
        raise LossInputsError(f"the case's token ids {list(ids.shape)}, mask {list(mask.shape)} and logits {shape} "
                              "do not match")
    if len(payload) != np.prod(shape) * np.dtype(DTYPES[dtype]).itemsize:
        raise LossInputsError(f"the case sent {len(payload)} bytes of logits, not the {shape} its header names")
    if ids.min() < 0 or ids.max() >= shape[-1] or not np.isin(mask, (0, 1)).all():
        raise LossInputsError("the case's token ids are outside its logits' vocabulary, or its mask is not 0 and 1")
    return ids, mask, np.frombuffer(payload, dtype=DTYPES[dtype]).reshape(shape), dtype


def course_loss(inputs: dict, payload: bytes) -> tuple[float, float]:
    """(the course's loss, the loss on real tokens only) of the sequences a case sent.

    The course takes the mean cross-entropy over every position of the left-padded batch, padding included, then
    "masks" it by multiplying that mean by the mask and dividing by the mask's sum, which leaves the same mean. The
    second number masks padding for real: what the model thinks of the text itself."""
    ids, mask, logits, dtype = read(inputs, payload)
    labels = ids[:, 1:]
    per_token, positions = np.empty(labels.shape), np.arange(labels.shape[1])
    for row in range(len(ids)):  # one sequence at a time: its float32 logits are tens of MB
        x = as_float32(logits[row], dtype)
        top = x.max(axis=-1)
        log_total = np.log(np.exp(x - top[:, None]).sum(axis=-1, dtype=np.float64)) + top
        per_token[row] = log_total - x[positions, labels[row]]
    real = mask[:, 1:].astype(bool) & mask[:, :-1].astype(bool)  # a real token predicted from a real token
    return float(per_token.mean()), float(per_token[real].sum() / max(real.sum(), 1))
