"""BestCheckpoint: the best epoch's preset, kept while training runs."""

import json
import os
import shutil

import keras
import numpy as np

from simmim_tf.atomic_files import write_atomically
from simmim_tf.training.runs import save_preset_atomically


class BestCheckpoint(keras.callbacks.Callback):
    """Writes the preset RUN/best/ (atomically) and RUN/best.json whenever `monitor` improves."""

    def __init__(self, out_dir, monitor, model_to_save=None, preprocessor=None):
        super().__init__()
        # The served model when training goes through a wrapper
        # (SimMIMVQATraining); best.json names the monitor as it would read
        # without the wrapper (val_accuracy).
        self.model_to_save = model_to_save
        self.preprocessor = preprocessor
        self.name = monitor.replace("answers_", "")
        self.path = os.path.join(out_dir, "best")
        self.monitor = monitor
        self.best = None
        info = os.path.join(out_dir, "best.json")
        if os.path.isfile(info) and os.path.isdir(self.path):  # a resumed run keeps its best
            with open(info) as f:
                self.best = json.load(f)["value"]

    def _better(self, value):
        if self.best is None:
            return True
        return value > self.best if "accuracy" in self.monitor else value < self.best

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not np.isfinite(value) or not self._better(value):
            return
        self.best = float(value)
        model = self.model_to_save or self.model
        served_preprocessor = model.preprocessor
        model.preprocessor = self.preprocessor or served_preprocessor
        try:
            save_preset_atomically(model, self.path)
        finally:
            model.preprocessor = served_preprocessor
        # best/ is a whole run: `export --run RUN/best` finds the data and
        # settings there, whether or not training ever finished.
        run_config = os.path.join(os.path.dirname(self.path), "run_config.json")
        if os.path.isfile(run_config):
            shutil.copyfile(run_config, os.path.join(self.path, "run_config.json"))
        write_atomically(
            os.path.join(os.path.dirname(self.path), "best.json"),
            json.dumps({"epoch": epoch + 1, "monitor": self.name, "value": self.best}),
        )
