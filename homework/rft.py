def load():
    raise NotImplementedError("homework/rft.py: not implemented yet")
