"""SimMIMCaptioner: image captioning on a SimMIMBackbone, a causal decoder
over the image regions, with generation by keras-hub's samplers."""

import keras
import keras_hub
import numpy as np
from keras import ops

from simmim_tf.api_export import simmim_export
from simmim_tf.errors import SimMIMInputError
from simmim_tf.layers.caption_decoder import CaptionDecoder
from simmim_tf.models.simmim_backbone import SimMIMBackbone
from simmim_tf.models.simmim_captioner_preprocessor import SimMIMCaptionerPreprocessor
from simmim_tf.models.simmim_task import SimMIMTask
from simmim_tf.models.summed_then_clipped import SimMIMAdamW
from simmim_tf.models.unused_backbone_layers import FUSION_LAYERS
from simmim_tf.preprocessing.question_tokenizer import ids_to_caption

MAX_BEAMS = 16


@simmim_export
class SimMIMCaptioner(SimMIMTask):
    """Captions images: the backbone's image encoder (`encode_image`), then
    a `CaptionDecoder` (masked self-attention, cross-attention to the image
    regions, MLP) trained with teacher forcing.

    A keras-hub `Task`: with a `preprocessor` attached, `fit` takes
    `{"images": uint8 images, "captions": strings}`, and `generate` takes
    images and returns captions. Generation follows keras-hub's generative
    tasks: a sampler chosen at `compile` (`"greedy"`, `"beam"`, or a
    `keras_hub.samplers.Sampler`), a maximum length, stopping at `[END]`,
    and a key/value cache so that each new word costs one decoder step.

    Args:
        backbone: `SimMIMBackbone`. Only its image encoder is used; the
            question encoder and fusion layers are not trained
            (`UnusedBackboneLayers`).
        decoder_layers: int. Blocks of the caption decoder.
        preprocessor: `SimMIMCaptionerPreprocessor` or None.

    Inputs: `{"images": uint8 (batch, S, S, 3), "token_ids": int32 (batch,
    tokens)}`. Output: next-token logits (batch, tokens, vocabulary).

    Example:
    >>> preprocessor = SimMIMCaptionerPreprocessor.from_data(
    ...     captions, image_size=128, sequence_length=48)
    >>> model = SimMIMCaptioner.from_preset("tiny", preprocessor=preprocessor)
    >>> model.compile()
    >>> model.fit({"images": images, "captions": captions}, epochs=5)
    >>> model.generate(images[:2])
    ['a large red circle to the left of a small blue square', ...]
    """

    backbone_cls = SimMIMBackbone
    preprocessor_cls = SimMIMCaptionerPreprocessor
    UNUSED_LAYERS = FUSION_LAYERS + ("question_encoder",)

    def __init__(self, backbone, decoder_layers=2, preprocessor=None, dtype=None, **kwargs):
        if decoder_layers < 1:
            raise ValueError(f"`decoder_layers` must be at least 1; received {decoder_layers}")
        # === Layers ===
        self.backbone = backbone
        self.preprocessor = preprocessor
        dtype = dtype or backbone.dtype_policy
        self.decoder = CaptionDecoder(
            vocabulary_size=backbone.vocabulary_size,
            max_length=backbone.max_sequence_length,
            hidden_dim=backbone.hidden_dim,
            num_layers=decoder_layers,
            num_heads=backbone.num_heads,
            intermediate_dim=backbone.intermediate_dim,
            dropout=backbone.dropout,
            name="caption_decoder",
            dtype=dtype,
        )
        # === Functional model ===
        kwargs.setdefault("name", "simmim_captioner")
        size = backbone.image_size
        inputs = {
            "images": keras.Input((size, size, 3), dtype="uint8", name="images"),
            "token_ids": keras.Input((None,), dtype="int32", name="token_ids"),
        }
        regions = backbone.encode_image(inputs["images"])
        outputs = self.decoder(inputs["token_ids"], regions)
        super().__init__(inputs=inputs, outputs=outputs, dtype=dtype, **kwargs)
        # === Config ===
        self.decoder_layers = decoder_layers
        self.sampler = keras_hub.samplers.get("greedy")

    def compile(self, optimizer="auto", learning_rate=1e-3, sampler="greedy", **kwargs):
        """AdamW (weight decay 0.01, gradients clipped to norm 1), token-level
        cross-entropy over the real (unpadded) targets and their accuracy by
        default. `sampler`: what `generate` uses, `"greedy"`, `"beam"` or a
        `keras_hub.samplers.Sampler`."""
        if optimizer == "auto":
            optimizer = SimMIMAdamW(learning_rate, weight_decay=0.01, clipnorm=1.0)
        kwargs.setdefault("loss", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        kwargs.setdefault(
            "weighted_metrics", [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        )
        super().compile(optimizer=optimizer, **kwargs)
        self.sampler = keras_hub.samplers.get(sampler)

    @classmethod
    def _from_architecture(cls, preset, preprocessor, dtype, decoder_layers=2, **overrides):
        """`from_preset` of a named architecture: `decoder_layers` as in the
        constructor; `overrides` replace the preset's backbone arguments."""
        backbone = cls._named_backbone(preset, preprocessor, dtype, overrides)
        return cls(backbone, decoder_layers, preprocessor, dtype=dtype)

    # --- generation ---------------------------------------------------------

    def generate_ids(self, images, max_length=None, sampler=None):
        """Float32 or uint8 images already at the model's size (batch, S, S,
        3) → int32 (batch, max_length + 1): `[START]`, then the generated
        ids (anything after the first `[END]` is padding). `max_length`:
        words to generate at most, `[END]` included (default: the decoder's
        length)."""
        preprocessor = self._require_preprocessor()
        max_length = self._check_max_length(max_length)
        sampler = keras_hub.samplers.get(sampler) if sampler is not None else self.sampler
        regions = self.backbone.encode_image(images)
        batch = ops.shape(regions)[0]
        prompt = np.zeros((batch, max_length + 1), np.int32)
        prompt[:, 0] = preprocessor.start_token_id
        mask = np.zeros(prompt.shape, bool)
        mask[:, 0] = True

        def next_logits(prompt, cache, index):
            keys_values, regions = cache
            rows = ops.shape(prompt)[0]
            token = ops.slice(prompt, [0, index - 1], [rows, 1])
            position = ops.full((rows, 1), index - 1, dtype="int32")
            logits, keys_values = self.decoder.step(token, position, regions, keys_values)
            return logits, None, (keys_values, regions)

        ids = sampler(
            next_logits,
            ops.convert_to_tensor(prompt),
            cache=(self.decoder.empty_cache(batch), regions),
            index=1,
            mask=ops.convert_to_tensor(mask),
            stop_token_ids=[preprocessor.end_token_id],
            model=self,
        )
        return _pad_after_end(ops.convert_to_numpy(ids), preprocessor.end_token_id)

    def generate(self, images, max_length=None, num_beams=None, batch_size=64):
        """Images as people have them (uint8, any size, 1 to 4 channels) →
        a caption (str) each. `num_beams`: beam search with that many beams
        instead of the sampler set at `compile` (greedy by default)."""
        converter = self._require_preprocessor().image_converter
        sampler = None
        if num_beams is not None:
            if not 1 <= int(num_beams) <= MAX_BEAMS:
                raise SimMIMInputError(f"num_beams must be 1 to {MAX_BEAMS}, got {num_beams}")
            sampler = keras_hub.samplers.BeamSampler(num_beams=int(num_beams))
        pixels = np.stack([np.asarray(converter(np.asarray(image))) for image in images])
        captions = []
        for i in range(0, len(pixels), batch_size):
            ids = self.generate_ids(pixels[i : i + batch_size], max_length, sampler)
            captions += [self.detokenize(row) for row in ids]
        return captions

    def detokenize(self, ids):
        """Token ids → the caption's words: up to the first `[END]`, without
        `[START]` and padding."""
        vocabulary = self._require_preprocessor().tokenizer.get_vocabulary()
        return ids_to_caption(ids, vocabulary)

    def _check_max_length(self, max_length):
        longest = self.decoder.max_length
        if max_length is None:
            return longest
        if not 1 <= int(max_length) <= longest:
            raise SimMIMInputError(
                f"max_length must be 1 to {longest} (the model's caption length), got {max_length}"
            )
        return int(max_length)

    def get_config(self):
        config = super().get_config()  # backbone, preprocessor, name
        config.update({"decoder_layers": self.decoder_layers})
        return config


def _pad_after_end(ids, end_id):
    """Everything after each row's first `[END]` set to padding (0)."""
    ids = np.array(ids, np.int32)
    is_end = ids == end_id
    is_end[:, 0] = False  # the start position never ends a caption
    after = np.cumsum(is_end, axis=1) - is_end > 0
    ids[after] = 0
    return ids
