# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · Distributed training with tf.distribute
#
# The same `model.fit` as notebook 01, under `tf.distribute.MirroredStrategy`:
# one copy of the model per device, each batch split between the copies,
# gradients summed across them before every update. Here the two "devices"
# are logical CPU devices carved out of this machine's CPU, so the notebook
# runs anywhere; on a machine with GPUs, drop the first cell's device set-up
# and `MirroredStrategy()` picks every visible GPU.
#
# What changes with a strategy, and nothing else does:
# 1. the model is built **and compiled** inside `strategy.scope()`, so its
#    variables are mirrored;
# 2. the batch size given to the data set is the **global** batch size, split
#    evenly between replicas (per-replica batch = global ÷ replicas).

# %%
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf

from simmim_tf.data import sort_of_clevr
from simmim_tf.data.vqa_dataset import load_split
from simmim_tf.models.simmim_vqa import SimMIMVQA
from simmim_tf.preprocessing.answer_vocabulary import AnswerVocabulary
from simmim_tf.preprocessing.question_tokenizer import QuestionTokenizer
from simmim_tf.training.input_pipeline import make_dataset

# Two logical CPU devices. This must come before TensorFlow first uses the
# CPU (restart the kernel if it complains that devices are initialized).
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)

NUM_IMAGES = 200
DATA = f"notebook_data/sort_of_clevr_{NUM_IMAGES}"
GLOBAL_BATCH_SIZE = 64
EPOCHS = 4
STEPS_PER_EPOCH = 5  # a short run: the comparison is about the first steps

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
print(f"{strategy.num_replicas_in_sync} replicas: {strategy.extended.worker_devices}")
print(f"per-replica batch: {GLOBAL_BATCH_SIZE // strategy.num_replicas_in_sync}")

# %% [markdown]
# ## Data, as in notebook 01

# %%
if not os.path.isfile(os.path.join(DATA, "questions.jsonl")):
    sort_of_clevr.generate(DATA, num_images=NUM_IMAGES, seed=0)
train = load_split(DATA, "train")
tokenizer = QuestionTokenizer.fit(train.questions, sequence_length=16)
answers = AnswerVocabulary.fit(train.answers)
ids, _ = tokenizer.encode_batch(train.questions)
answer_ids = np.array([answers.id(a) for a in train.answers], np.int32)


def make_training_data():
    # Unshuffled here, for the comparison below. Under a strategy, Keras
    # draws one batch to build the model before training, which starts a
    # pass over the data set; a shuffle that reshuffles on every pass then
    # gives the distributed run the one-device run's order of the next epoch.
    # Real runs shuffle.
    return make_dataset(train, ids, answer_ids, GLOBAL_BATCH_SIZE, shuffle=False)


def build_model():
    model = SimMIMVQA.from_preset(
        "tiny",
        num_answers=len(answers),
        vocabulary_size=tokenizer.vocabulary_size,
        image_size=train.images.shape[1],
        max_sequence_length=tokenizer.sequence_length,
    )
    # No gradient clipping here: Keras 3.15 clips each replica's gradient
    # before summing them, so with clipping the two runs would differ
    # whenever a gradient is clipped. (The default compile() clips.)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3, weight_decay=0.01))
    return model


# %% [markdown]
# ## Fit on one device, then on two replicas, from the same initial weights

# %%
keras.utils.set_random_seed(0)
single = build_model()
initial_weights = single.get_weights()
single_history = single.fit(
    make_training_data(), epochs=EPOCHS, steps_per_epoch=STEPS_PER_EPOCH, verbose=2
)

with strategy.scope():
    mirrored = build_model()
mirrored.set_weights(initial_weights)
mirrored_history = mirrored.fit(
    make_training_data(), epochs=EPOCHS, steps_per_epoch=STEPS_PER_EPOCH, verbose=2
)

# %% [markdown]
# ## Same data, same global batch, same start: the same training
# With a mirrored strategy each replica computes the gradient of its half of
# the batch; summed, they equal the one-device gradient of the whole batch.
# The two runs should therefore follow each other up to float rounding
# (dropout is off in the `tiny` preset; with dropout they differ by the
# random masks). The batch norm of the image stem is synchronized across
# replicas, so it normalises over the global batch, as on one device.
#
# Only up to rounding: the replicas sum in another order, and two things
# amplify those differences step after step: Adam divides each update by the
# gradient's own scale (so parameters whose gradient is almost zero move by
# noise), and the stem's batch norm divides by the small variance of these
# mostly-white images. The weights that differ most are printed below.

# %%
differences = sorted(
    (float(np.max(np.abs(a - b))), v.path)
    for a, b, v in zip(single.get_weights(), mirrored.get_weights(), single.weights, strict=True)
)[::-1]
print(f"largest weight differences after {EPOCHS * STEPS_PER_EPOCH} steps:")
for difference, path in differences[:3]:
    print(f"  {difference:.2e}  {path}")
print(
    f"final loss: one device {single_history.history['loss'][-1]:.4f}, "
    f"mirrored {mirrored_history.history['loss'][-1]:.4f}"
)

plt.figure(figsize=(4.5, 3))
epochs = np.arange(1, EPOCHS + 1)
plt.plot(epochs, single_history.history["loss"], "o-", label="one device")
plt.plot(epochs, mirrored_history.history["loss"], "s--", label="MirroredStrategy, 2 replicas")
plt.xlabel("epoch")
plt.ylabel("training loss")
plt.legend()
plt.show()

# %% [markdown]
# ## Several machines
# `tf.distribute.MultiWorkerMirroredStrategy` runs the same code on several
# machines. Each machine runs the same script with its own `TF_CONFIG`
# environment variable, naming the whole cluster and its own place in it:
#
# ```bash
# # on machine 0 (the chief)
# TF_CONFIG='{"cluster": {"worker": ["10.0.0.1:12345", "10.0.0.2:12345"]},
#             "task": {"type": "worker", "index": 0}}' python train.py
# # on machine 1
# TF_CONFIG='{"cluster": {"worker": ["10.0.0.1:12345", "10.0.0.2:12345"]},
#             "task": {"type": "worker", "index": 1}}' python train.py
# ```
#
# and, in `train.py`, `strategy = tf.distribute.MultiWorkerMirroredStrategy()`
# in place of `MirroredStrategy`. What else changes:
# - the data set must be split between workers: tf.data's auto-sharding does
#   it (by file for file-based data sets, by element for in-memory ones like
#   ours), or each worker reads its own shard;
# - only the chief (index 0) should write the saved model; the others write
#   to a temporary folder and delete it;
# - every worker must start: training waits until the whole cluster is up.
