# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · Quickstart: generate data, fit SimMIM, evaluate per question family
#
# This notebook runs top to bottom on a laptop CPU in a couple of minutes.
# It uses a small setting (a few hundred Sort-of-CLEVR images, a few epochs),
# so the model it trains is far from converged: raise `NUM_IMAGES` and
# `EPOCHS` for a real run (`simmim-tf train` does the same from the command
# line, with checkpoints, resumption and the grounding loss).
#
# The model follows keras-hub's contract: a preprocessor (question
# tokenizer, image converter, answer vocabulary) is attached to the task, so
# `fit`, `predict` and `evaluate` take raw images and strings, and
# `save_to_preset` / `from_preset` share a trained model as a folder.
#
# Sort-of-CLEVR (Santoro et al. 2017, appendix D): 75×75 images with six
# objects, one of each colour, each a square or a circle; 10 non-relational
# and 10 relational questions per image.

# %%
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import matplotlib.pyplot as plt
import numpy as np

from simmim_tf.data import sort_of_clevr
from simmim_tf.data.vqa_dataset import load_split
from simmim_tf.evaluation import accuracy_by_family, format_accuracy
from simmim_tf.models import SimMIMVQA, SimMIMVQAPreprocessor

NUM_IMAGES = 400  # 10,000 in the paper's setting
EPOCHS = 4
BATCH_SIZE = 64
DATA = f"notebook_data/sort_of_clevr_{NUM_IMAGES}"
keras.utils.set_random_seed(0)

# %% [markdown]
# ## 1. Generate a data set
# The generator writes `images/*.png`, `questions.jsonl` and `scenes.jsonl`;
# the last images are the test split.

# %%
if not os.path.isfile(os.path.join(DATA, "questions.jsonl")):
    sort_of_clevr.generate(DATA, num_images=NUM_IMAGES, seed=0)
train = load_split(DATA, "train")
test = load_split(DATA, "test")
print(f"train: {len(train)} questions on {len(train.images)} images")
print(f"test:  {len(test)} questions on {len(test.images)} images")

fig, axes = plt.subplots(1, 4, figsize=(10, 3))
for ax, i in zip(axes, range(0, 80, 20), strict=True):
    ax.imshow(train.images[train.image_index[i]])
    ax.set_title(f"{train.questions[i]}\n→ {train.answers[i]}", fontsize=7)
    ax.axis("off")
plt.show()

# %% [markdown]
# ## 2. A preprocessor fitted on the training split
# The question vocabulary and the answer vocabulary come from the training
# questions only; the image converter resizes any image to the model's size.

# %%
preprocessor = SimMIMVQAPreprocessor.from_data(
    train.questions, train.answers, image_size=75, sequence_length=16
)
print(
    f"{preprocessor.tokenizer.vocabulary_size()} question tokens, "
    f"{len(preprocessor.answers)} answers: {preprocessor.answers}"
)
train_x = {"images": train.images[train.image_index], "questions": train.questions}
test_x = {"images": test.images[test.image_index], "questions": test.questions}

# %% [markdown]
# ## 3. Build SimMIM from a named architecture and `model.fit` on raw inputs
# `SimMIMVQA.from_preset("tiny", preprocessor=...)` takes the architecture
# from the preset and the sizes from the preprocessor. `compile()` defaults
# to AdamW with gradient clipping, sparse cross-entropy on logits and
# accuracy; labels are the answer strings.

# %%
model = SimMIMVQA.from_preset("tiny", preprocessor=preprocessor)
steps = EPOCHS * int(np.ceil(len(train) / BATCH_SIZE))
model.compile(
    learning_rate=keras.optimizers.schedules.CosineDecay(
        0.0, steps, warmup_target=1e-3, warmup_steps=steps // 20
    )
)
print(f"{model.count_params():,} parameters")
history = model.fit(
    train_x,
    train.answers,
    validation_data=(test_x, test.answers),
    batch_size=BATCH_SIZE,
    epochs=EPOCHS,
    verbose=2,
)

# %% [markdown]
# ## 4. Learning curves

# %%
fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.2))
epochs = np.arange(1, EPOCHS + 1)
for key, ax in (("loss", ax_loss), ("accuracy", ax_acc)):
    ax.plot(epochs, history.history[key], "o-", label="train")
    ax.plot(epochs, history.history["val_" + key], "s--", label="test")
    ax.set_xlabel("epoch")
    ax.set_title(key)
    ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 5. Accuracy per question family
# Non-relational questions ask about one object; relational ones about how
# objects relate (closest, furthest, how many of the same shape).

# %%
logits = model.predict(test_x, batch_size=256, verbose=0)
predicted = [preprocessor.answers[i] for i in logits.argmax(axis=-1)]
result = accuracy_by_family(predicted, test.answers, test.families)
print(format_accuracy(result, f"SimMIM tiny after {EPOCHS} epochs on {NUM_IMAGES} images"))

families = [f for f in result if f != "overall"]
plt.figure(figsize=(4, 3))
plt.bar(families, [100 * result[f]["accuracy"] for f in families], color=["tab:blue", "tab:green"])
plt.ylabel("test accuracy (%)")
plt.ylim(0, 100)
plt.show()

# %% [markdown]
# ## 6. Answer a question about any picture
# `answer()` takes images as people have them (any size, grayscale or with
# an alpha channel) and says which words of the question it did not know.

# %%
image = np.asarray(test.images[test.image_index[0]])
screenshot = np.concatenate([image, np.full(image.shape[:2] + (1,), 255, np.uint8)], axis=-1)
prediction = model.answer(screenshot, "What colour is the zebra?")
print(
    f"{prediction.answer} ({prediction.probability:.0%}); unknown words: {prediction.unknown_words}"
)
prediction = model.answer(image, test.questions[0])
print(f"{test.questions[0]} → {prediction.answer} ({prediction.probability:.0%})")

# %% [markdown]
# ## 7. Share the trained model as a preset folder

# %%
model.save_to_preset("notebook_data/quickstart_preset")
again = SimMIMVQA.from_preset("notebook_data/quickstart_preset")
print(sorted(os.listdir("notebook_data/quickstart_preset")))
print(
    "same answer after reloading:",
    again.answer(image, test.questions[0]).answer == prediction.answer,
)
