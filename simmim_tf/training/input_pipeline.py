"""tf.data pipeline for a `QuestionSet`: each image is stored once and
gathered per batch, so a picture with 20 questions is decoded once."""

import tensorflow as tf


def make_dataset(question_set, token_ids, answer_ids, batch_size, shuffle, seed=0):
    """Yields ({"images", "token_ids", "padding_mask"}, answer_id) batches."""
    images = tf.constant(question_set.images)  # (num_images, H, W, 3) uint8
    ds = tf.data.Dataset.from_tensor_slices((question_set.image_index, token_ids, answer_ids))
    if shuffle:
        ds = ds.shuffle(len(token_ids), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)

    def to_inputs(index, ids, answers):
        return (
            {"images": tf.gather(images, index), "token_ids": ids, "padding_mask": ids != 0},
            answers,
        )

    return ds.map(to_inputs, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
