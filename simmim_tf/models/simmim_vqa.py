"""SimMIMVQA: the visual-question-answering task on a SimMIMBackbone."""

import keras
import numpy as np

from simmim_tf.api_export import simmim_export
from simmim_tf.errors import SimMIMInputError
from simmim_tf.layers.answer_head import AnswerHead
from simmim_tf.models.answer_task import AnswerTask
from simmim_tf.models.simmim_backbone import SimMIMBackbone
from simmim_tf.models.simmim_task import SimMIMTask
from simmim_tf.models.simmim_vqa_preprocessor import SimMIMVQAPreprocessor


@simmim_export
class SimMIMVQA(AnswerTask, SimMIMTask):
    """Answer classification over a fixed answer vocabulary.

    A keras-hub `Task`: with a `preprocessor` attached, `fit`, `evaluate` and
    `predict` take raw inputs, `{"images": uint8 images, "questions":
    strings}` and answer strings as labels; `answer()` returns answer
    strings with probabilities, unknown words and attention maps. In-memory
    data is reshuffled every epoch (`ShuffledFit`).

    Args:
        backbone: `SimMIMBackbone`.
        num_answers: int. Size of the answer vocabulary.
        preprocessor: `SimMIMVQAPreprocessor` or None (inputs already
            tokenised and resized).
        head_dim: int or None. Hidden size of the answer head; None uses the
            backbone's `hidden_dim`.
        dropout: float. Dropout in the answer head.

    Inputs: the backbone's dict. Output: logits (batch, num_answers).

    Example:
    >>> preprocessor = SimMIMVQAPreprocessor.from_data(
    ...     questions, answers, image_size=75, sequence_length=16)
    >>> model = SimMIMVQA.from_preset("tiny", preprocessor=preprocessor)
    >>> model.fit({"images": images, "questions": questions}, answers)
    >>> model.answer(images[:1], questions[:1])[0].answer
    >>> model.save_to_preset("my_model")
    >>> SimMIMVQA.from_preset("my_model")
    """

    backbone_cls = SimMIMBackbone
    preprocessor_cls = SimMIMVQAPreprocessor
    # Every backbone layer answers.
    UNUSED_LAYERS = ()

    def __init__(
        self,
        backbone,
        num_answers,
        preprocessor=None,
        head_dim=None,
        dropout=0.0,
        dtype=None,
        **kwargs,
    ):
        # === Layers ===
        self.backbone = backbone
        self.preprocessor = preprocessor
        self._check_answers(preprocessor, num_answers)
        dtype = dtype or backbone.dtype_policy
        self.answer_head = AnswerHead(
            num_answers, head_dim or backbone.hidden_dim, dropout, name="answer_head", dtype=dtype
        )
        # === Functional model ===
        kwargs.setdefault("name", "simmim_vqa")
        inputs = backbone.input
        logits = self.answer_head(backbone(inputs)["pooled"])
        super().__init__(inputs=inputs, outputs=logits, dtype=dtype, **kwargs)
        # === Config ===
        self.num_answers = num_answers
        self.head_dim = head_dim
        self.dropout = dropout

    def answer(self, images, questions, top_k=3, batch_size=64):
        """Answers questions about images, as people have them.

        Args:
            images: one image or a list/array of images: uint8, (H, W) or
                (H, W, 1 to 4 channels), any size (the preprocessor's image
                converter makes them RGB at the model's size).
            questions: a question string or a list, one per image.
            top_k: int. Answers kept per question, best first.

        Returns a `simmim_tf.prediction.Prediction` (or a list of them): the
        answer and its probability, the top k, the words the model saw, the
        ones it did not know, and the visual attention map.
        """
        from simmim_tf.prediction import make_prediction

        if self.preprocessor is None:
            raise ValueError("answer() needs a preprocessor (the model has none attached)")
        single = isinstance(questions, str)
        if single:
            images, questions = [images], [questions]
        if len(images) != len(questions):
            raise SimMIMInputError(f"{len(images)} images but {len(questions)} questions")
        tokenizer = self.preprocessor.question_tokenizer()
        for question in questions:
            tokenizer.encode(question)  # the tokenizer's own refusal of an empty question
        converter = self.preprocessor.image_converter
        pixels = np.stack([np.asarray(converter(np.asarray(image))) for image in images])
        ids, mask = (np.asarray(t) for t in self.preprocessor.token_ids(questions))
        predictions = []
        for start in range(0, len(questions), batch_size):
            batch = slice(start, start + batch_size)
            out = self.answer_with_attention(
                {"images": pixels[batch], "token_ids": ids[batch], "padding_mask": mask[batch]}
            )
            probabilities = np.asarray(keras.ops.softmax(out["logits"]), np.float32)
            attention = np.asarray(out["visual_attention"], np.float32)
            anchors = out.get("anchor_attention")
            anchors = None if anchors is None else np.asarray(anchors, np.float32)
            for i, question in enumerate(questions[batch]):
                predictions.append(
                    make_prediction(
                        probabilities[i],
                        attention[i],
                        mask[batch][i],
                        question,
                        tokenizer,
                        self.preprocessor.answers,
                        self.backbone.grid_shape,
                        top_k,
                        anchor_attention=None if anchors is None else anchors[i],
                    )
                )
        return predictions[0] if single else predictions

    def answer_with_attention(self, inputs, training=False):
        """Logits and the backbone's attention maps, for explanation and export.

        `inputs["images"]` may be uint8 or float32 pixels in 0..255 (see
        `SimMIMBackbone.features`).
        """
        features = self.backbone.features(
            inputs["images"], inputs["token_ids"], inputs["padding_mask"], training=training
        )
        maps = ("visual_attention", "textual_attention", "memory_attention", "anchor_attention")
        return {
            "logits": self.answer_head(features["pooled"], training=training),
            # The anchor where the backbone has relational attention; the
            # other three unless an ablation switched a fusion part off.
            **{name: features[name] for name in maps if name in features},
        }

    def answer_from_regions(self, regions, token_ids, padding_mask, training=False):
        """`answer_with_attention` from cached regions (`backbone.encode_image`)."""
        features = self.backbone.features_from_regions(
            regions, token_ids, padding_mask, training=training
        )
        out = {"logits": self.answer_head(features["pooled"], training=training)}
        for name in ("visual_attention", "anchor_attention"):
            if name in features:
                out[name] = features[name]
        return out

    def get_config(self):
        config = super().get_config()  # backbone, preprocessor, name
        config.update(
            {
                "num_answers": self.num_answers,
                "head_dim": self.head_dim,
                "dropout": self.dropout,
            }
        )
        return config
