# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · Quantize and export for on-device use
#
# From a trained run to the files an app ships:
# - a **SavedModel** (for TensorFlow Serving and for the converter);
# - **TFLite float32** (the reference), **float16** (for the GPU delegate)
#   and **int8** (weights and activations in 8 bits, calibrated on training
#   questions, for CPUs);
# - `simmim_meta.json`, the tokenizer vocabulary and the answer list.
#
# Then a table of accuracy, size and latency per variant, a bar chart, and
# the int8 model answering a question through `simmim_tf.edge`, which needs
# only ai-edge-litert, NumPy and Pillow. `simmim-tf export --run RUN --out
# EXP --quantize float32,float16,int8` does the export from the command line.
#
# Two more CPU variants exist: `dynamic` (int8 weights, activations
# quantized at run time) and `int8_mixed` (int8 in the fully connected and
# convolution layers, the rest float). On the models measured in README
# both follow Keras more closely than `int8` and run faster; `int8` is for
# hardware that runs integer ops only.

# %%
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import time

import matplotlib.pyplot as plt
import numpy as np

from simmim_tf.data import sort_of_clevr
from simmim_tf.data.vqa_dataset import load_split
from simmim_tf.edge import EdgePredictor
from simmim_tf.evaluation import evaluate_tflite
from simmim_tf.export.litert_exporter import export_run
from simmim_tf.training.run_config import RunConfig
from simmim_tf.training.run_evaluation import evaluate
from simmim_tf.training.vqa_trainer import train

NUM_IMAGES = 400  # Sort-of-CLEVR images to generate and train on
EPOCHS = 4
DATA = f"notebook_data/sort_of_clevr_{NUM_IMAGES}"
RUN = "notebook_data/run_tiny"  # notebook 02 trains the same run
EXPORT = "notebook_data/export_tiny"
VARIANTS = ("float32", "float16", "int8")

if not os.path.isfile(os.path.join(DATA, "questions.jsonl")):
    sort_of_clevr.generate(DATA, num_images=NUM_IMAGES, seed=0)
if not os.path.isfile(os.path.join(RUN, "task.json")):
    train(RunConfig(data=DATA, preset="tiny", epochs=EPOCHS, batch_size=64), RUN, verbose=2)

# %% [markdown]
# ## Export
# Every variant is converted with TFLite builtin ops only (no Flex ops, which
# neither the GPU delegate nor a minimal runtime has), from a batch-1
# signature so that shapes are static. The float variants' ops are checked
# against what the GPU delegate accepts.

# %%
report = export_run(RUN, EXPORT, DATA, variants=VARIANTS)
for variant, problems in report["gpu_delegate_problems"].items():
    print(f"{variant}: GPU-delegate op check: {'all ops accepted' if not problems else problems}")

# %% [markdown]
# ## Accuracy, size and latency
# Accuracy on the test split per question family; latency is the median of
# 50 single-question calls on one CPU thread after 5 warm-up calls.

# %%
keras_accuracy = evaluate(RUN, DATA)
test = load_split(DATA, "test")
image, question = test.images[test.image_index[0]], test.questions[0]
rows = [("Keras", keras_accuracy, None, None)]
for variant in VARIANTS:
    path = os.path.join(EXPORT, f"model_{variant}.tflite")
    accuracy = evaluate_tflite(path, DATA)
    predictor = EdgePredictor(path, num_threads=1)
    for _ in range(5):
        predictor.predict(image, question)
    times = []
    for _ in range(50):
        start = time.perf_counter()
        predictor.predict(image, question)
        times.append(time.perf_counter() - start)
    rows.append((variant, accuracy, os.path.getsize(path) / 1e6, 1e3 * np.median(times)))

print(f"{'model':<8} {'non-rel.':>9} {'rel.':>7} {'overall':>8} {'MB':>7} {'ms/question':>12}")
for name, accuracy, size, latency in rows:
    print(
        f"{name:<8} {100 * accuracy['non_relational']['accuracy']:8.2f}% "
        f"{100 * accuracy['relational']['accuracy']:6.2f}% "
        f"{100 * accuracy['overall']['accuracy']:7.2f}% "
        + (f"{size:7.3f} {latency:12.2f}" if size is not None else f"{'':>7} {'':>12}")
    )

# %%
names = [r[0] for r in rows[1:]]
fig, axes = plt.subplots(1, 3, figsize=(10, 3))
axes[0].bar(names, [100 * r[1]["overall"]["accuracy"] for r in rows[1:]], color="tab:blue")
axes[0].axhline(100 * keras_accuracy["overall"]["accuracy"], color="k", ls="--", label="Keras")
axes[0].set_ylabel("test accuracy (%)")
axes[0].legend()
axes[1].bar(names, [r[2] for r in rows[1:]], color="tab:green")
axes[1].set_ylabel("file size (MB)")
axes[2].bar(names, [r[3] for r in rows[1:]], color="tab:orange")
axes[2].set_ylabel("latency, 1 thread (ms)")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## The int8 model on its own
# `EdgePredictor` loads the .tflite and `simmim_meta.json` beside it; this
# is all an app needs.

# %%
predictor = EdgePredictor(os.path.join(EXPORT, "model_int8.tflite"))
prediction = predictor.predict(image, question)
print(question)
print("  " + ", ".join(f"{a} ({p:.0%})" for a, p in prediction.top_k))
print(f"  expected: {test.answers[0]}")
plt.figure(figsize=(3, 3))
plt.imshow(image)
plt.imshow(
    prediction.attention_map,
    cmap="inferno",
    alpha=0.6,
    extent=(0, image.shape[1], image.shape[0], 0),
    interpolation="bilinear",
)
plt.title(f"int8: {prediction.answer}", fontsize=9)
plt.axis("off")
plt.show()
