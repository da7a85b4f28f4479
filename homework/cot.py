def load():
    raise NotImplementedError("homework/cot.py: not implemented yet")
