"""SimMIMRetriever: image–text retrieval on a SimMIMBackbone, trained with a
contrastive loss (the model description's contrastive module)."""

import keras
import numpy as np
from keras.src.losses.loss import scale_loss_for_distribution  # not exported in Keras 3.15

from simmim_tf.api_export import simmim_export
from simmim_tf.layers.contrastive_head import ContrastiveHead
from simmim_tf.layers.embedding_projection import EmbeddingProjection
from simmim_tf.models.contrastive_loss import LOSSES, contrastive_loss, pair_positives
from simmim_tf.models.simmim_backbone import SimMIMBackbone
from simmim_tf.models.simmim_retriever_preprocessor import SimMIMRetrieverPreprocessor
from simmim_tf.models.simmim_task import SimMIMTask
from simmim_tf.models.summed_then_clipped import SimMIMAdamW
from simmim_tf.preprocessing.question_tokenizer import check_known_words


@simmim_export
class SimMIMRetriever(SimMIMTask):
    """Two towers on one backbone, trained to embed matching images and
    captions close together (CLIP, Radford et al. 2021; SigLIP, Zhai et
    al. 2023).

    image tower: the backbone's image encoder (`encode_image`), then
    `EmbeddingProjection` (mean over regions, layer norm, linear, L2
    normalisation). text tower: the backbone's question encoder over the
    caption, then its own `EmbeddingProjection` (mean over real words).
    `ContrastiveHead` turns a batch's embeddings into similarity logits for
    the loss: every image–caption pair of the batch with the same caption
    text, or the same image id when `y` gives them, is a positive.

    A keras-hub `Task`: with a `preprocessor` attached, `fit` takes
    `{"images": uint8 images, "captions": strings}` (and optional image ids
    as `y`; in-memory data is reshuffled every epoch, `ShuffledFit`), and
    `embed_images`, `embed_texts` and `search` take raw inputs.

    Args:
        backbone: `SimMIMBackbone`. Its fusion layers are not trained
            (`UnusedBackboneLayers`).
        embedding_dim: int or None. Embedding size; None uses the
            backbone's `hidden_dim`.
        contrastive_loss: str. `"clip"` (symmetric softmax cross-entropy,
            learned temperature) or `"sigmoid"` (SigLIP's pairwise loss,
            learned temperature and bias).
        preprocessor: `SimMIMRetrieverPreprocessor` or None.

    Inputs: the backbone's dict. Outputs: a dict with `image_embeddings` and
    `text_embeddings`, (batch, embedding_dim) each, unit rows.

    Example:
    >>> preprocessor = SimMIMRetrieverPreprocessor.from_data(
    ...     captions, image_size=128, sequence_length=48)
    >>> model = SimMIMRetriever.from_preset("tiny", preprocessor=preprocessor)
    >>> model.compile()
    >>> model.fit({"images": images, "captions": captions}, epochs=5)
    >>> model.search(model.embed_images(images), "a large red circle", top_k=3)
    """

    backbone_cls = SimMIMBackbone
    preprocessor_cls = SimMIMRetrieverPreprocessor

    def __init__(
        self,
        backbone,
        embedding_dim=None,
        contrastive_loss="clip",
        preprocessor=None,
        dtype=None,
        **kwargs,
    ):
        if embedding_dim is not None and embedding_dim < 1:
            raise ValueError(f"`embedding_dim` must be at least 1; received {embedding_dim}")
        if contrastive_loss not in LOSSES:
            raise ValueError(
                f"`contrastive_loss` must be one of {LOSSES}; received {contrastive_loss!r}"
            )
        # === Layers ===
        self.backbone = backbone
        self.preprocessor = preprocessor
        dtype = dtype or backbone.dtype_policy
        size = embedding_dim or backbone.hidden_dim
        self.image_projection = EmbeddingProjection(size, name="image_projection", dtype=dtype)
        self.text_projection = EmbeddingProjection(size, name="text_projection", dtype=dtype)
        self.contrastive_head = ContrastiveHead(
            contrastive_loss, name="contrastive_head", dtype=dtype
        )
        # === Functional model ===
        kwargs.setdefault("name", "simmim_retriever")
        inputs = backbone.input
        outputs = {
            "image_embeddings": self.image_tower(inputs["images"]),
            "text_embeddings": self.text_tower(inputs["token_ids"], inputs["padding_mask"]),
        }
        super().__init__(inputs=inputs, outputs=outputs, dtype=dtype, **kwargs)
        self.contrastive_head.build()
        # === Config ===
        self.embedding_dim = embedding_dim
        self.contrastive_loss = contrastive_loss

    def image_tower(self, images, training=False):
        """Images, uint8 or float32 in 0..255 → (batch, embedding_dim) unit rows."""
        regions = self.backbone.encode_image(images, training=training)  # (batch, regions, dim)
        return self.image_projection(regions)

    def text_tower(self, token_ids, padding_mask, training=False):
        """Token ids and padding mask → (batch, embedding_dim) unit rows."""
        words = self.backbone.get_layer("question_encoder")(
            token_ids, padding_mask, training=training
        )  # (batch, tokens, dim)
        return self.text_projection(words, padding_mask)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The contrastive loss of the batch (`contrastive_loss`), plus any
        regularisation losses. `y`, if given, holds image ids."""
        logits = self.contrastive_head(y_pred["image_embeddings"], y_pred["text_embeddings"])
        positives = pair_positives(x["token_ids"], y)  # (batch, batch)
        loss = contrastive_loss(logits, positives, self.contrastive_loss)
        if self.losses:
            loss = loss + keras.ops.sum(self.losses)
        # Under tf.distribute each replica's gradients are summed: scale by
        # 1 / replicas, as Keras's compiled losses are. The negatives of a
        # pair are those of its replica's share of the batch.
        return scale_loss_for_distribution(loss)

    def compile(self, optimizer="auto", learning_rate=1e-3, **kwargs):
        """AdamW (weight decay 0.01, gradients clipped to norm 1) by default;
        the loss is the model's own (`compute_loss`)."""
        if optimizer == "auto":
            optimizer = SimMIMAdamW(learning_rate, weight_decay=0.01, clipnorm=1.0)
        kwargs.pop("loss", None)
        super().compile(optimizer=optimizer, **kwargs)

    @classmethod
    def _from_architecture(
        cls, preset, preprocessor, dtype, embedding_dim=None, contrastive_loss="clip", **overrides
    ):
        """`from_preset` of a named architecture: `embedding_dim` and
        `contrastive_loss` as in the constructor; `overrides` replace the
        preset's backbone arguments."""
        backbone = cls._named_backbone(preset, preprocessor, dtype, overrides)
        return cls(backbone, embedding_dim, contrastive_loss, preprocessor, dtype=dtype)

    def embed_images(self, images, batch_size=64):
        """Images as people have them (uint8, any size, 1 to 4 channels) →
        float32 (n, embedding_dim), unit rows."""
        converter = self._require_preprocessor().image_converter
        pixels = np.stack([np.asarray(converter(np.asarray(image))) for image in images])
        return np.concatenate(
            [
                keras.ops.convert_to_numpy(self.image_tower(pixels[i : i + batch_size]))
                for i in range(0, len(pixels), batch_size)
            ]
        ).astype(np.float32)

    def embed_texts(self, texts, batch_size=256):
        """Caption or query strings → float32 (n, embedding_dim), unit rows.
        A text without words is refused, naming it."""
        preprocessor = self._require_preprocessor()
        tokenizer = preprocessor.caption_tokenizer()
        ids, mask = tokenizer.encode_batch(list(texts))  # refuses a text without words
        return np.concatenate(
            [
                keras.ops.convert_to_numpy(
                    self.text_tower(ids[i : i + batch_size], mask[i : i + batch_size])
                )
                for i in range(0, len(ids), batch_size)
            ]
        ).astype(np.float32)

    def search(self, image_embeddings, query, top_k=5):
        """The `top_k` images nearest to `query`, best first: a list of
        (index into `image_embeddings`, cosine similarity). A query none of
        whose words the model knows is refused instead of ranked."""
        tokenizer = self._require_preprocessor().caption_tokenizer()
        check_known_words(tokenizer, query)
        scores = np.asarray(image_embeddings) @ self.embed_texts([query])[0]
        order = np.argsort(-scores, kind="stable")[:top_k]
        return [(int(i), float(scores[i])) for i in order]

    def get_config(self):
        config = super().get_config()  # backbone, preprocessor, name
        config.update(
            {"embedding_dim": self.embedding_dim, "contrastive_loss": self.contrastive_loss}
        )
        return config
