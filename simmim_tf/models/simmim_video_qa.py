"""SimMIMVideoQA: questions about a clip, with a memory carried frame by frame."""

import numpy as np
from keras import ops

from simmim_tf.api_export import simmim_export
from simmim_tf.layers.answer_head import AnswerHead
from simmim_tf.layers.cross_attention_block import CrossAttentionBlock
from simmim_tf.layers.layer_norm import LayerNorm
from simmim_tf.layers.streaming_memory import StreamingMemory
from simmim_tf.models.answer_task import AnswerTask
from simmim_tf.models.simmim_backbone import SimMIMBackbone
from simmim_tf.models.simmim_task import SimMIMTask
from simmim_tf.models.simmim_video_qa_preprocessor import SimMIMVideoQAPreprocessor


@simmim_export
class SimMIMVideoQA(AnswerTask, SimMIMTask):
    """Video question answering on a `SimMIMBackbone`.

    1. The backbone's image encoder turns every frame into regions.
    2. A `StreamingMemory` reads the frames in order, one update per frame;
       its state (the slots) is all that is kept of the past.
    3. At the end, the backbone answers the question over the last frame's
       regions (visual and textual attention, semantic memory, relational
       head) and that answer's features read the streaming memory by
       cross-attention; the two are added and classified.

    A keras-hub `Task`: with a `preprocessor` attached, `fit`, `evaluate` and
    `predict` take raw inputs, `{"frames": uint8 clips, "questions":
    strings, "clip_index": ...}` and answer strings as labels;
    `answer_clips()` returns answer strings.

    Args:
        backbone: `SimMIMBackbone` (its image size is the frames').
        num_answers: int. Size of the answer vocabulary.
        preprocessor: `SimMIMVideoQAPreprocessor` or None (inputs already
            tokenised and resized).
        memory_slots: int or None. Slots of the streaming memory; None: the
            backbone's `memory_slots`.
        dropout: float.

    Inputs: {"frames": (clips, frames, H, W, 3) pixels 0..255, "token_ids",
    "padding_mask": (questions, tokens), "clip_index": int32 (questions,)
    into the clips (several questions per clip share its frames); without
    "clip_index", question i is about clip i}. Output: logits (questions,
    num_answers).
    """

    backbone_cls = SimMIMBackbone
    preprocessor_cls = SimMIMVideoQAPreprocessor
    # Every backbone layer answers.
    UNUSED_LAYERS = ()

    def __init__(
        self, backbone, num_answers, preprocessor=None, memory_slots=None, dropout=0.0,
        dtype=None, **kwargs,
    ):  # fmt: skip
        # === Layers ===
        self.backbone = backbone
        self.preprocessor = preprocessor
        self._check_answers(preprocessor, num_answers)
        dtype = dtype or backbone.dtype_policy
        dim, heads = backbone.hidden_dim, backbone.num_heads
        self.memory = StreamingMemory(
            memory_slots or backbone.memory_slots,
            heads,
            backbone.intermediate_dim,
            dropout,
            name="streaming_memory",
            dtype=dtype,
        )
        self.memory_read = CrossAttentionBlock(
            heads, dim // heads, dropout, name="memory_read", dtype=dtype
        )
        self.final_norm = LayerNorm(1e-5, name="video_norm", dtype=dtype)
        self.answer_head = AnswerHead(num_answers, dim, dropout, name="answer_head", dtype=dtype)
        # === Model ===
        kwargs.setdefault("name", "simmim_video_qa")
        super().__init__(dtype=dtype, **kwargs)
        # A subclassed model: one call on a two-frame clip builds every
        # layer now (the weights do not depend on the clip's length), so
        # that a preset's weights load into it.
        self._build_on_a_short_clip()
        # === Config ===
        self.num_answers = num_answers
        self.memory_slots = memory_slots
        self.dropout = dropout

    def clip_regions(self, frames, training=False):
        """(clips, frames, regions, dim): every frame through the image encoder."""
        clips, length = ops.shape(frames)[0], frames.shape[1]
        flat = ops.reshape(frames, (-1, *frames.shape[2:]))  # (clips * frames, H, W, 3)
        regions = self.backbone.encode_image(flat, training=training)
        return ops.reshape(regions, (clips, length, *regions.shape[1:]))

    def clip_memory(self, clip_regions, training=False):
        """(clips, slots, dim): what is kept of the clip (the experiments'
        baselines replace this)."""
        state, _ = self.memory(clip_regions, training=training)
        return state

    def answer_from_memory(self, last_regions, memory, token_ids, padding_mask, training=False):
        """Logits from the last frame's regions and the clip's memory, one
        row per question."""
        features = self.backbone.features_from_regions(
            last_regions, token_ids, padding_mask, training=training
        )
        pooled = features["pooled"]  # (questions, dim)
        read, _ = self.memory_read(ops.expand_dims(pooled, 1), memory, training=training)
        fused = self.final_norm(pooled + ops.squeeze(read, 1))
        return self.answer_head(fused, training=training)

    def call(self, inputs, training=False):
        frames = ops.cast(inputs["frames"], self.compute_dtype)
        regions = self.clip_regions(frames, training=training)  # (clips, T, R, D)
        memory = self.clip_memory(regions, training=training)  # (clips, K, D)
        last = regions[:, -1]
        if "clip_index" in inputs:
            memory = ops.take(memory, inputs["clip_index"], axis=0)
            last = ops.take(last, inputs["clip_index"], axis=0)
        return self.answer_from_memory(
            last, memory, inputs["token_ids"], inputs["padding_mask"], training=training
        )

    def answer_clips(self, frames, clip_index, questions, batch_size=128):
        """The answer string to each question, `clip_index[i]` naming its
        clip in `frames` (uint8, (clips, frames, H, W, C), at the model's
        image size); needs a preprocessor. Each batch of questions encodes
        its clips once."""
        preprocessor = self._require_preprocessor()
        token_ids, padding_mask = (np.asarray(t) for t in preprocessor.token_ids(questions))
        clip_index = np.asarray(clip_index)
        predicted = []
        for start in range(0, len(questions), batch_size):
            rows = slice(start, start + batch_size)
            clips, local = np.unique(clip_index[rows], return_inverse=True)
            logits = self(
                {
                    "frames": frames[clips],
                    "clip_index": local.astype(np.int32),
                    "token_ids": token_ids[rows],
                    "padding_mask": padding_mask[rows],
                }
            )
            predicted += [preprocessor.answers[i] for i in np.argmax(np.asarray(logits), -1)]
        return predicted

    def memory_reads(self, frames):
        """Where the streaming memory looked in each frame of one clip:
        float32 (frames, slots, rows, cols), each slot's read attention over
        the frame's regions, averaged over heads. `frames`: uint8 (frames,
        H, W, C) at the model's image size."""
        regions = self.clip_regions(ops.cast(ops.convert_to_tensor(frames[None]), "float32"))
        _, weights = self.memory(regions)  # (1, frames, heads, slots, regions)
        reads = ops.convert_to_numpy(ops.mean(ops.cast(weights[0], "float32"), axis=1))
        return reads.reshape(*reads.shape[:2], *self.backbone.grid_shape)

    def _build_on_a_short_clip(self):
        size, length = self.backbone.image_size, self.backbone.max_sequence_length
        self(
            {
                "frames": ops.zeros((1, 2, size, size, 3)),
                "token_ids": ops.ones((1, length), "int32"),
                "padding_mask": ops.ones((1, length), "int32"),
            }
        )

    def get_config(self):
        config = super().get_config()  # backbone, preprocessor, name
        config.update(
            {
                "num_answers": self.num_answers,
                "memory_slots": self.memory_slots,
                "dropout": self.dropout,
            }
        )
        return config
