"""Training settings of a run, recorded as RUN/run_config.json.

The architecture is not here: it is the model's own config, saved inside
RUN/model.keras. Tests and `make demo` use small values through the same
dataclass.
"""

import dataclasses
import json

from simmim_tf.errors import SimMIMInputError


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
    # Weight of the grounding loss (each region's object attributes, from
    # scenes.jsonl); used where the data has scenes, with the memory
    # pipeline on one replica. 0: off.
    grounding_weight: float = 1.0
    # Questions of one image kept together in a batch, so that the image is
    # encoded once for all of them (memory pipeline, one replica); 1: none.
    questions_per_image: int = 4
    # Share of the training images held out (with all their questions) to
    # pick RUN/best.keras by validation accuracy; 0: best by training loss.
    validation_fraction: float = 0.0
    # `batch_size` is the global batch, split between the replicas, unless
    # `per_replica_batch_size` is set: then the global batch is
    # per_replica_batch_size × replicas.
    per_replica_batch_size: int | None = None
    # Linear scaling (Goyal et al. 2017): with a base batch B, the peak
    # learning rate is learning_rate × global batch / B. None: as given.
    learning_rate_base_batch: int | None = None
    # Training steps per call into the compiled graph (fewer Python round trips).
    steps_per_execution: int = 1
    # XLA. Off by default: it halved the tiny preset's speed on this 2-core
    # CPU (benchmarks/results/train_throughput.json).
    jit_compile: bool = False

    def global_batch_and_learning_rate(self, replicas):
        """(global batch, peak learning rate) for `replicas` replicas in sync."""
        for name in ("batch_size", "per_replica_batch_size", "learning_rate_base_batch"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise SimMIMInputError(f"{name} must be at least 1, got {value}")
        if self.per_replica_batch_size is not None:
            batch = self.per_replica_batch_size * replicas
        else:
            batch = self.batch_size
            if batch % replicas:
                raise SimMIMInputError(
                    f"batch_size {batch} does not split evenly between {replicas} replicas"
                )
        learning_rate = self.learning_rate
        if self.learning_rate_base_batch is not None:
            learning_rate *= batch / self.learning_rate_base_batch
        return batch, learning_rate

    def save(self, path):
        with open(path, "w") as f:
            json.dump(dataclasses.asdict(self), f, indent=2)

    @classmethod
    def load(cls, path):
        with open(path) as f:
            return cls(**json.load(f))
