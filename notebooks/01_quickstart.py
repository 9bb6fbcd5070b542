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
# line, with checkpoints and resumption).
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
from simmim_tf.models.simmim_vqa import SimMIMVQA
from simmim_tf.preprocessing.answer_vocabulary import AnswerVocabulary
from simmim_tf.preprocessing.question_tokenizer import QuestionTokenizer
from simmim_tf.training.input_pipeline import make_dataset

NUM_IMAGES = 400  # 10,000 in the paper's setting
EPOCHS = 4
BATCH_SIZE = 64
DATA = "notebook_data/sort_of_clevr_400"
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
# ## 2. Tokenizer, answer vocabulary and the tf.data pipeline
# Both vocabularies are fitted on the training questions only. Each image is
# stored once and gathered per batch.

# %%
tokenizer = QuestionTokenizer.fit(train.questions, sequence_length=16)
answers = AnswerVocabulary.fit(train.answers)
print(f"{tokenizer.vocabulary_size} question tokens, {len(answers)} answers: {answers.answers}")


def encode(split):
    ids, _ = tokenizer.encode_batch(split.questions)
    return ids, np.array([answers.id(a) for a in split.answers], np.int32)


train_ids, train_answers = encode(train)
test_ids, test_answers = encode(test)
train_ds = make_dataset(train, train_ids, train_answers, BATCH_SIZE, shuffle=True)
test_ds = make_dataset(test, test_ids, test_answers, 256, shuffle=False)

# %% [markdown]
# ## 3. Build SimMIM from a preset and `model.fit`
# `SimMIMVQA.from_preset` takes the architecture from the preset and the
# task's sizes from the data. `compile()` defaults to AdamW with gradient
# clipping, sparse cross-entropy on logits and accuracy.

# %%
model = SimMIMVQA.from_preset(
    "tiny",
    num_answers=len(answers),
    vocabulary_size=tokenizer.vocabulary_size,
    image_size=train.images.shape[1],
    max_sequence_length=tokenizer.sequence_length,
)
steps = EPOCHS * int(np.ceil(len(train) / BATCH_SIZE))
model.compile(
    learning_rate=keras.optimizers.schedules.CosineDecay(
        0.0, steps, warmup_target=1e-3, warmup_steps=steps // 20
    )
)
print(f"{model.count_params():,} parameters")
# shuffle=False: the tf.data pipeline shuffles (Keras would only warn).
history = model.fit(train_ds, validation_data=test_ds, epochs=EPOCHS, verbose=2, shuffle=False)

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
logits = model.predict(test_ds, verbose=0)
predicted = [answers.answers[i] for i in logits.argmax(axis=-1)]
result = accuracy_by_family(predicted, test.answers, test.families)
print(format_accuracy(result, f"SimMIM tiny after {EPOCHS} epochs on {NUM_IMAGES} images"))

families = [f for f in result if f != "overall"]
plt.figure(figsize=(4, 3))
plt.bar(families, [100 * result[f]["accuracy"] for f in families], color=["tab:blue", "tab:green"])
plt.ylabel("test accuracy (%)")
plt.ylim(0, 100)
plt.show()
