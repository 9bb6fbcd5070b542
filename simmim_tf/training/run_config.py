"""Training settings of a run, recorded as RUN/run_config.json.

The architecture is not here: it is the model's own config, saved in the
run's preset (RUN/config.json). Tests and `make demo` use small values
through the same dataclass. `simmim-tf train` generates one option per field
from `help` and `choices` below, so each default lives here alone.
"""

import dataclasses
import json
import typing

from simmim_tf.atomic_files import write_atomically
from simmim_tf.errors import SimMIMInputError

TASKS = ("vqa", "retrieval", "captioning", "video-qa")


def _option(default, help, choices=None, tasks=TASKS):
    """A field with its command-line help; `tasks`: those that use it (a
    value other than the default for another task is an error)."""
    metadata = {"help": help, "choices": choices, "tasks": tasks}
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass
class RunConfig:
    data: str = dataclasses.field(metadata={"help": "data folder with questions.jsonl and images/"})
    task: str = _option(
        "vqa",
        "vqa: answer questions (DATA/questions.jsonl); retrieval: image–text retrieval with "
        "a contrastive loss (DATA/captions.jsonl); captioning: a caption decoder over the "
        "image (DATA/captions.jsonl); video-qa: questions about clips (DATA/questions.jsonl "
        "naming clip folders, docs/video.md); an option marked for other tasks is an error",
        TASKS,
    )
    preset: str = _option("tiny", "named architecture", ("tiny", "small", "base"))
    init_from: str | None = _option(
        None,
        "a folder written by `simmim-tf pretrain`: start from its pretrained image encoder "
        "(the image encoder's architecture comes from it, the rest from --preset)",
        tasks=("vqa", "retrieval", "captioning"),
    )
    epochs: int = _option(
        10, "passes over the training questions (with --minutes: at most this many)"
    )
    minutes: float | None = _option(
        None,
        "VQA and video-qa: train for this many minutes of wall clock, end-of-epoch "
        "evaluation included; the learning rate warms up and decays over the time rather "
        "than the steps (default: none, --epochs alone)",
        tasks=("vqa", "video-qa"),
    )
    batch_size: int = _option(64, "global batch: split between the replicas of a distributed run")
    learning_rate: float = _option(1e-3, "peak learning rate (warm-up, then cosine decay)")
    warmup_fraction: float = _option(0.05, "share of the steps spent warming up")
    max_sequence_length: int = _option(
        16,
        "question (or caption) tokens; longer ones are truncated (CLEVR-2D's captions "
        "need 48 for retrieval and captioning)",
    )
    seed: int = _option(0, "random seed (weights, shuffling, validation share)")
    strategy: str = _option(
        "auto",
        "tf.distribute strategy; auto picks multi_worker when TF_CONFIG names a cluster, "
        "mirrored when several GPUs are visible, else one_device",
        ("auto", "one_device", "mirrored", "multi_worker"),
    )
    max_answers: int | None = _option(
        None,
        "VQA: answer classes: the K most frequent training answers (default: all); questions "
        "with other answers are bad records",
        tasks=("vqa",),
    )
    skip_bad_records: bool = _option(
        False,
        "skip bad records (corrupt JSON lines or images, missing fields, answers outside "
        "--max-answers) instead of stopping; they are counted and listed in "
        "RUN/skipped_records.txt",
    )
    input_pipeline: str = _option(
        "memory",
        "VQA (retrieval reads into memory): memory: decode every image once up front and "
        "keep it (fastest while the set fits in memory); stream: read and decode image "
        "files in parallel each epoch; tfrecord: the same from DATA/tfrecords shards "
        "(`data to-tfrecord`)",
        ("memory", "stream", "tfrecord"),
        tasks=("vqa",),
    )
    contrastive_loss: str = _option(
        "clip",
        "retrieval: clip (symmetric softmax cross-entropy, learned temperature) or sigmoid "
        "(SigLIP's pairwise loss)",
        ("clip", "sigmoid"),
        tasks=("retrieval",),
    )
    embedding_dim: int | None = _option(
        None,
        "retrieval: embedding size (default: the preset's hidden size)",
        tasks=("retrieval",),
    )
    decoder_layers: int = _option(
        2, "captioning: blocks of the caption decoder", tasks=("captioning",)
    )
    label_smoothing: float = _option(
        0.0, "VQA and video-qa: 0 to <1 (0: none)", tasks=("vqa", "video-qa")
    )
    grounding_weight: float = _option(
        1.0,
        "VQA: weight of the auxiliary loss that predicts each image region's object attributes "
        "from DATA/scenes.jsonl, where it exists (every pipeline and strategy; 0: off)",
        tasks=("vqa",),
    )
    anchor_weight: float = _option(
        1.0,
        "VQA: weight of the loss that trains the relational attention's anchor to land on the "
        "object the question names (from DATA/scenes.jsonl, where it exists; presets with "
        "relational attention; every pipeline and strategy; 0: off)",
        tasks=("vqa",),
    )
    questions_per_image: int = _option(
        4,
        "VQA: questions of one image kept in the same batch, so the image is encoded once for "
        "them (memory pipeline, one replica; 1: off); video-qa: of one clip",
        tasks=("vqa", "video-qa"),
    )
    validation_fraction: float = _option(
        0.0,
        "VQA and video-qa: share of training images (clips) held out to keep RUN/best/ by "
        "validation accuracy (0: best by training loss)",
        tasks=("vqa", "video-qa"),
    )
    per_replica_batch_size: int | None = _option(
        None, "set the batch per replica instead: the global batch is this × replicas"
    )
    # Linear scaling (Goyal et al. 2017).
    learning_rate_base_batch: int | None = _option(
        None,
        "scale the learning rate linearly with the global batch: the peak is learning "
        "rate × global batch / B (default: no scaling)",
    )
    steps_per_execution: int = _option(1, "training steps run per call into the compiled graph")
    # benchmarks/results/train_throughput.json: XLA halved the tiny preset's
    # speed on the 2-core CPU measured.
    jit_compile: bool = _option(
        False, "compile the training step with XLA (off: slower on the 2-core CPU measured)"
    )

    def __post_init__(self):
        for field in dataclasses.fields(self):
            tasks = field.metadata.get("tasks", TASKS)
            value = getattr(self, field.name)
            if self.task not in tasks and value != field.default:
                flag = "--" + field.name.replace("_", "-")
                raise SimMIMInputError(
                    f"{flag} {value} is for --task {' or '.join(tasks)}; "
                    f"--task {self.task} does not use it"
                )

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

    def data_section(self, patch_size=None):
        """The `DataSection` of this run: all that the data code reads.

        patch_size: the model's, where it is not the preset's (an image
        encoder from `--init-from`)."""
        # Imported here: `simmim-tf --help` and its option checks load this
        # module before (and without) Keras, which `simmim_tf.models` imports.
        from simmim_tf.models.simmim_presets import SIMMIM_PRESETS

        architecture = SIMMIM_PRESETS[self.preset]
        relational = architecture.get("relational")
        losses_off = []
        if not self.grounding_weight:
            losses_off.append("grounding off (grounding_weight 0)")
        if not self.anchor_weight:
            losses_off.append("anchor off (anchor_weight 0)")
        elif not relational:
            losses_off.append(f"anchor off (preset {self.preset} has no relational attention)")
        return DataSection(
            folder=self.data,
            input_pipeline=self.input_pipeline,
            batch_size=self.batch_size,
            questions_per_image=self.questions_per_image,
            max_answers=self.max_answers,
            max_sequence_length=self.max_sequence_length,
            validation_fraction=self.validation_fraction,
            seed=self.seed,
            grounding=bool(self.grounding_weight),
            num_anchors=relational["num_anchors"] if self.anchor_weight and relational else 0,
            patch_size=patch_size or architecture["patch_size"],
            losses_off=tuple(losses_off),
        )

    def save(self, path):
        write_atomically(path, json.dumps(dataclasses.asdict(self), indent=2))

    @classmethod
    def load(cls, path):
        with open(path) as f:
            return cls(**json.load(f))


@dataclasses.dataclass(frozen=True)
class DataSection:
    """The data section of a run (`RunConfig.data_section()`): what
    `training_data` and the input pipelines read, and nothing else, as
    big_vision's `config.input` is all its input pipeline sees."""

    folder: str  # questions.jsonl, images/, scenes.jsonl where annotated
    input_pipeline: str = "memory"  # memory, stream or tfrecord
    batch_size: int = 64  # global: split between the replicas
    questions_per_image: int = 4  # image-grouped batches (memory, one replica)
    max_answers: int | None = None
    max_sequence_length: int = 16
    validation_fraction: float = 0.0
    seed: int = 0
    # The object targets the model's losses want, where scenes.jsonl exists:
    grounding: bool = True
    num_anchors: int = 0  # anchor targets for this many anchors (0: none)
    patch_size: int = 8  # the image side of one region: the targets' grid
    losses_off: tuple = ()  # why a loss is off, for the line `train` prints


def add_arguments(parser):
    """One command-line option per `RunConfig` field (`--batch-size` for
    `batch_size`), with its default, type, choices and help."""
    for field in dataclasses.fields(RunConfig):
        flag = "--" + field.name.replace("_", "-")
        help = field.metadata.get("help", "")
        if field.type is bool:
            parser.add_argument(flag, action="store_true", help=help)
            continue
        # `int | None` → int
        kind = next(t for t in typing.get_args(field.type) or (field.type,) if t is not type(None))
        required = field.default is dataclasses.MISSING
        default = None if required else field.default
        if not required and default is not None:
            help = f"{help} (default {default})"
        parser.add_argument(
            flag,
            type=kind,
            default=default,
            required=required,
            choices=field.metadata.get("choices"),
            help=help,
        )


def from_arguments(args):
    """The `RunConfig` of parsed `add_arguments` options."""
    return RunConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(RunConfig)})
