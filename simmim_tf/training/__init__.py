"""Training and evaluation of SimMIMVQA with `model.fit`."""
