# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · What the model looks at
#
# SimMIM answers through three attentions, and each can be drawn:
# - **visual attention**: the question's words attend over the image regions;
# - **semantic memory reads**: the memory slots read regions and words; we
#   draw the part of the last layer's read weight that lands on the image;
# - **textual attention**: the image regions attend over the question's words.
#
# `simmim_tf.explanation.explain` reduces the attention tensors to these
# maps (mean over heads, and over words, slots or regions);
# `simmim_tf.plotting.attention_figure` draws them. `simmim-tf predict
# --explain out.png` uses the same figure for a .tflite model, which exports
# the visual attention only.
#
# The model here trains for about a minute on a small data set, so do not
# expect sharp maps: the point is how to read them. A run trained longer
# (`make demo`, or `simmim-tf train`) can be loaded instead by pointing `RUN`
# at its folder.

# %%
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import matplotlib.pyplot as plt
import numpy as np

from simmim_tf.data import sort_of_clevr
from simmim_tf.data.vqa_dataset import load_split, read_scenes
from simmim_tf.explanation import attention_in_box, explain, named_object_box
from simmim_tf.plotting import attention_figure
from simmim_tf.training.run_config import RunConfig
from simmim_tf.training.runs import load_run
from simmim_tf.training.vqa_trainer import train

NUM_IMAGES = 400  # Sort-of-CLEVR images to generate and train on
EPOCHS = 4
DATA = f"notebook_data/sort_of_clevr_{NUM_IMAGES}"
RUN = "notebook_data/run_tiny"

# %% [markdown]
# ## A trained model
# `train` writes a run folder: a keras-hub preset of the model (with its
# tokenizer, image converter and answers) plus the run config and history.
# A finished run is reused.

# %%
if not os.path.isfile(os.path.join(DATA, "questions.jsonl")):
    sort_of_clevr.generate(DATA, num_images=NUM_IMAGES, seed=0)
if not os.path.isfile(os.path.join(RUN, "task.json")):
    train(RunConfig(data=DATA, preset="tiny", epochs=EPOCHS, batch_size=64), RUN, verbose=2)
model = load_run(RUN)  # = SimMIMVQA.from_preset(RUN)
test = load_split(DATA, "test", image_size=model.backbone.image_size)
scenes = read_scenes(DATA)
print(f"region grid {model.backbone.grid_shape}, {len(test)} test questions")

# %% [markdown]
# ## Three questions about one picture


# %%
def show(i, e):
    """Draws explanation `e` of test question `i`."""
    attention_figure(
        test.images[test.image_index[i]],
        e.visual_map,
        test.questions[i],
        e.answer,
        e.probability,
        memory_map=e.memory_map,
        words=e.words,
        word_weights=e.word_weights,
        expected=test.answers[i],
        anchor_map=e.anchor_map,
    )
    plt.show()


for i in (0, 1, 2):
    e = explain(model, test.images[test.image_index[i]], test.questions[i])
    show(i, e)
    print(f"memory's read weight on the image: {e.memory_image_share:.0%} (the rest on words)")

# %% [markdown]
# ## Does the visual attention find the object the question names?
# Every Sort-of-CLEVR question names one object by its colour. From
# `scenes.jsonl` we know where it is, so we can measure the share of the
# visual attention inside its box, against the share the box would get from
# uniform attention.

# %%
size = model.backbone.image_size
patch = model.backbone.patch_size
shares, uniform = [], []
for i in range(0, len(test), 10):
    image = test.images[test.image_index[i]]
    box = named_object_box(test.questions[i], scenes[test.image_paths[test.image_index[i]]])
    e = explain(model, image, test.questions[i])
    shares.append(attention_in_box(e.visual_map, size, patch, box))
    uniform.append(attention_in_box(np.ones_like(e.visual_map), size, patch, box))
print(
    f"visual attention inside the named object's box: {np.mean(shares):.1%} on average "
    f"over {len(shares)} questions (uniform attention: {np.mean(uniform):.1%})"
)
plt.figure(figsize=(4, 3))
plt.hist(np.array(shares) / np.array(uniform), bins=20, color="tab:purple")
plt.axvline(1.0, color="k", linestyle="--", label="uniform")
plt.xlabel("attention on the named object ÷ uniform")
plt.ylabel("questions")
plt.legend()
plt.show()

# %% [markdown]
# ## One wrong answer, explained
# The first test question the model gets wrong: its top answers, and where
# it looked. A right answer with attention elsewhere, or a wrong one with
# attention on the right object, tells whether the model failed to find the
# object or failed to read it.

# %%
wrong = None
for i in range(len(test)):
    image = test.images[test.image_index[i]]
    e = explain(model, image, test.questions[i])
    if e.answer != test.answers[i]:
        wrong = i
        break
if wrong is None:
    print("the model answers every test question right")
else:
    print(f"question: {test.questions[wrong]}")
    print(f"expected: {test.answers[wrong]}")
    print("model:    " + ", ".join(f"{a} ({p:.0%})" for a, p in e.top_k))
    box = named_object_box(test.questions[wrong], scenes[test.image_paths[test.image_index[wrong]]])
    print(
        "visual attention on the named object: "
        f"{attention_in_box(e.visual_map, size, patch, box):.1%} "
        f"(uniform: {attention_in_box(np.ones_like(e.visual_map), size, patch, box):.1%})"
    )
    show(wrong, e)
