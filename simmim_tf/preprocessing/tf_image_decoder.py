"""Image bytes to the model's uint8 input, as TensorFlow ops: used by the
streaming input pipelines and by the SavedModel signature that takes
encoded images."""

import tensorflow as tf


def decode_image(data, image_size):
    """PNG or JPEG bytes to uint8 (image_size, image_size, 3)."""
    image = tf.io.decode_image(data, channels=3, expand_animations=False)
    shape = tf.shape(image)

    def resize():
        resized = tf.image.resize(image, (image_size, image_size), antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)

    # Images already at the model's size (generated sets) pass untouched.
    same = tf.logical_and(tf.equal(shape[0], image_size), tf.equal(shape[1], image_size))
    image = tf.cond(same, lambda: image, resize)
    return tf.ensure_shape(image, (image_size, image_size, 3))
