"""Saving a preprocessing object as the JSON of its constructor arguments."""

import json


class JsonConfig:
    """Mixin: `save(path)` writes `get_config()`; `load(path)` calls `cls(**config)`.

    The class that mixes it in defines `get_config()`, returning exactly its
    constructor arguments.
    """

    def save(self, path):
        with open(path, "w") as f:
            json.dump(self.get_config(), f)

    @classmethod
    def load(cls, path):
        with open(path) as f:
            return cls(**json.load(f))
