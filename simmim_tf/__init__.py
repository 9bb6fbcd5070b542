"""SimMIM: visual question answering with visual attention, textual attention
and a semantic memory, in Keras 3.

The submodules that need Keras (`layers`, `models`, `training`, `export`) are
imported on first use, so that `simmim_tf.edge` (the on-device runtime) and
`simmim_tf.preprocessing` load without TensorFlow.
"""

import importlib

__version__ = "0.1.0"

_LAZY_SUBMODULES = (
    "data",
    "edge",
    "export",
    "layers",
    "models",
    "plotting",
    "preprocessing",
    "training",
)


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
