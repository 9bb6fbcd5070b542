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
        # The mask goes in as int32 (the model's Input casts it to bool):
        # under a tf.distribute strategy, Keras builds the model from one
        # batch averaged across replicas, and TF's AddN has no bool kernel.
        mask = tf.cast(ids != 0, tf.int32)
        return {"images": tf.gather(images, index), "token_ids": ids, "padding_mask": mask}, answers

    return ds.map(to_inputs, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
