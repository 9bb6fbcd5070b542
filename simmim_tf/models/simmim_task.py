"""`SimMIMTask`: what the VQA, retrieval and captioning tasks share, among it
the one `from_preset`, and the preset folder they are saved to."""

import json
import os
import warnings

import keras
import keras_hub

from simmim_tf.errors import SimMIMInputError
from simmim_tf.models.prebuilt_optimizer import PrebuiltOptimizer
from simmim_tf.models.replayed_compile import ReplayedCompile
from simmim_tf.models.shuffled_fit import ShuffledFit
from simmim_tf.models.simmim_backbone import SimMIMBackbone
from simmim_tf.models.simmim_presets import SIMMIM_PRESETS, preset_arguments
from simmim_tf.models.unused_backbone_layers import UnusedBackboneLayers

# What `save_to_preset` writes and `from_preset` needs (keras-hub's layout).
PRESET_FILES = (
    "config.json",
    "model.weights.h5",
    "task.json",
    "task.weights.h5",
    "preprocessor.json",
    "tokenizer.json",
    "image_converter.json",
    os.path.join("assets", "tokenizer", "vocabulary.txt"),
)


class SimMIMTask(
    UnusedBackboneLayers, ReplayedCompile, PrebuiltOptimizer, ShuffledFit, keras_hub.models.Task
):
    """A keras-hub `Task` on a `SimMIMBackbone`: compiled once per strategy
    (`ReplayedCompile`, `PrebuiltOptimizer`), in-memory data reshuffled every
    epoch (`ShuffledFit`), the backbone's unused layers left out of its
    weights (`UnusedBackboneLayers`).

    A task subclass implements `_from_architecture(preset, preprocessor,
    dtype, **kwargs)`: an untrained task from a named architecture.
    """

    @classmethod
    def from_preset(cls, preset, load_weights=True, preprocessor=None, dtype=None, **kwargs):
        """A trained task from a preset folder, or an untrained one from a
        named architecture.

        Args:
            preset: str. A folder written by `save_to_preset` (or by
                `simmim-tf train`), or one of `SIMMIM_PRESETS` ("tiny",
                "small", "base") for a task built from scratch.
            load_weights: bool. For a folder: load its weights.
            preprocessor: the task's preprocessor (`from_data`). For a named
                architecture it sets the vocabulary, image size and text
                length (and the answers, for VQA).
            dtype: a dtype policy name, e.g. "mixed_bfloat16".
            **kwargs: for a named architecture, the task's own arguments
                (its `_from_architecture`) and backbone arguments replacing
                the preset's; for a folder, configuration overrides.
        """
        if preset in SIMMIM_PRESETS:
            return cls._from_architecture(preset, preprocessor, dtype, **kwargs)
        return load_preset_folder(cls, preset, load_weights, dtype, kwargs)

    def _require_preprocessor(self):
        if self.preprocessor is None:
            raise ValueError("this needs a preprocessor (the model has none attached)")
        return self.preprocessor

    @classmethod
    def _named_backbone(cls, preset, preprocessor, dtype, overrides):
        """The backbone of named architecture `preset`, sized by the task's
        `preprocessor`, `overrides` replacing the preset's arguments."""
        if preprocessor is None:
            raise ValueError(
                f"{cls.__name__}.from_preset({preset!r}) needs a preprocessor "
                f"({cls.__name__}Preprocessor.from_data)"
            )
        return SimMIMBackbone(
            vocabulary_size=preprocessor.tokenizer.vocabulary_size(),
            image_size=preprocessor.image_size,
            max_sequence_length=preprocessor.sequence_length,
            dtype=dtype,
            **preset_arguments(preset, overrides),
        )


def check_preset_folder(path, cls=None):
    """A one-line `SimMIMInputError` for a folder that is not a complete preset of `cls`."""
    if not os.path.isdir(path):
        raise SimMIMInputError(
            f"{path}: not a preset folder, nor a named architecture ({', '.join(SIMMIM_PRESETS)})"
        )
    missing = [name for name in PRESET_FILES if not os.path.isfile(os.path.join(path, name))]
    if missing:
        raise SimMIMInputError(
            f"{path}: not a complete preset (missing {', '.join(missing)}); "
            "presets are written by save_to_preset() or `simmim-tf train`"
        )
    if cls is not None:
        with open(os.path.join(path, "task.json")) as f:
            registered = json.load(f).get("registered_name", "?")
        expected = keras.saving.get_registered_name(cls)
        if registered != expected:
            raise SimMIMInputError(f"{path}: holds a {registered} preset, not {expected}")


def load_preset_folder(cls, preset, load_weights=True, dtype=None, overrides=None):
    """keras-hub's `Task.from_preset` of a folder for one of the package's
    tasks (`cls`), the folder checked first (`check_preset_folder`)."""
    check_preset_folder(preset, cls)
    kwargs = {"dtype": dtype} if dtype else {}
    with warnings.catch_warnings():
        # task.weights.h5 holds the trained optimizer's state, which a
        # freshly compiled model has no slots for yet: nothing is lost.
        warnings.filterwarnings("ignore", "Skipping variable loading for optimizer")
        return keras_hub.models.Task.from_preset.__func__(
            cls, preset, load_weights=load_weights, **kwargs, **(overrides or {})
        )
