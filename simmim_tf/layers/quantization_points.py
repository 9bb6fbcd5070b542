"""Named tensors inside layers where an int8 model holds a quantized value.

A layer marks an intermediate tensor that TFLite's int8 converter would
quantize, and that no layer boundary exposes (LayerNorm's centred input
and variance, attention scores and weights, a residual sum), with

    x = quantization_point(self, "centred", x)

Outside quantization-aware work this returns `x` unchanged and adds no op.
`simmim_tf.export.quantization_aware` installs a handler for the length of a
`with` block (recording each point's range, or fake-quantizing it), keyed
by `"<layer path>/<name>"`. Nothing here holds state a model saves.
"""

import contextlib

_handler = None


def quantization_point(layer, name, x, fixed_range=None):
    """`x`, or what the installed handler makes of it (see module doc).

    fixed_range: (min, max) the int8 kernel imposes on this tensor whatever
    calibration says (a softmax's output), used instead of a recorded range.
    """
    if _handler is None:
        return x
    return _handler(f"{layer.path}/{name}", x, fixed_range)


@contextlib.contextmanager
def quantization_handler(handler):
    """Installs `handler(key, tensor, fixed_range) -> tensor` for the block;
    one at a time."""
    global _handler
    if _handler is not None:
        raise RuntimeError("a quantization handler is already installed")
    _handler = handler
    try:
        yield
    finally:
        _handler = None
