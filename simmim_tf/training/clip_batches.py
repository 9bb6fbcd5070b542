"""Batches of clips with several questions each, for `SimMIMVideoQA.fit`."""

from simmim_tf.training.image_grouped_batches import image_grouped_batches


def clip_grouped_batches(clip_set, token_ids, answer_ids, batch_size, questions_per_clip=4, seed=0):
    """A tf.data.Dataset of ({"frames", "clip_index", "token_ids",
    "padding_mask"}, answers): `batch_size` questions a batch, the
    questions of one clip in groups of `questions_per_clip` that share its
    frames (each clip is encoded once per group), reshuffled every epoch.

    clip_set: `ClipQuestionSet`; token_ids int32 (questions, tokens);
    answer_ids int32 (questions,).
    """
    dataset = image_grouped_batches(
        clip_set, token_ids, answer_ids, batch_size, questions_per_clip, seed=seed
    )

    def renamed(inputs, targets):
        inputs = dict(inputs)
        inputs["frames"], inputs["clip_index"] = inputs.pop("images"), inputs.pop("image_index")
        return inputs, targets["answers"]

    return dataset.map(renamed)
