"""Registration of serializable classes (keras-hub's `keras_hub_export` role).

Every layer and model of the package goes through `simmim_export`, so that
`.keras` files name them `simmim_tf>ClassName` and load without
`custom_objects`.
"""

import keras

PACKAGE = "simmim_tf"


def simmim_export(cls):
    return keras.saving.register_keras_serializable(package=PACKAGE)(cls)
