"""Training settings of a run, recorded as RUN/run_config.json.

The architecture is not here: it is the model's own config, saved inside
RUN/model.keras. Tests and `make demo` use small values through the same
dataclass.
"""

import dataclasses
import json


@dataclasses.dataclass
class RunConfig:
    data: str
    preset: str = "tiny"
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 1e-3
    warmup_fraction: float = 0.05
    max_sequence_length: int = 16
    seed: int = 0
    strategy: str = "auto"  # see simmim_tf.training.distribution.make_strategy
    max_answers: int | None = None  # answer classes: the most frequent K (None: all)
    # False: a bad record stops training with its file and line. True: bad
    # records (and answers outside the top max_answers) are skipped, counted
    # and listed in RUN/skipped_records.txt.
    skip_bad_records: bool = False
    # memory | stream | tfrecord: see simmim_tf.training.input_pipeline.
    input_pipeline: str = "memory"
    label_smoothing: float = 0.0
    # Share of the training images held out (with all their questions) to
    # pick RUN/best.keras by validation accuracy; 0: best by training loss.
    validation_fraction: float = 0.0

    def save(self, path):
        with open(path, "w") as f:
            json.dump(dataclasses.asdict(self), f, indent=2)

    @classmethod
    def load(cls, path):
        with open(path) as f:
            return cls(**json.load(f))
