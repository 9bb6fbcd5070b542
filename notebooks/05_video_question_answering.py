# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 · Questions about a video, one frame at a time
#
# `SimMIMVideoQA` reads a clip frame by frame into a **streaming memory**:
# a few slots that read each frame's regions and update themselves, so
# that what is kept of the past never grows with the clip. At the end the
# question reads the memory (and the last frame). This notebook
# 1. generates moving-shapes clips (objects that move, bounce off walls and
#    pass over each other; questions about what, how, when and in what order),
# 2. trains the `tiny` model for a few minutes (`simmim-tf train --task
#    video-qa` does the same),
# 3. measures it per question family,
# 4. exports the two steps a device runs (frame step, answer step) and
#    answers a clip frame by frame with the edge runtime,
# 5. draws where the memory's slots looked in each frame.
#
# At this budget the model answers some families well above the
# commonest-answer floor and others near it (docs/video.md has the
# benchmark): the point here is how the pieces fit.

# %%
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import matplotlib.pyplot as plt

from simmim_tf.data import moving_shapes
from simmim_tf.data.clip_dataset import load_clip_split
from simmim_tf.edge import EdgeVideoAnswerer
from simmim_tf.export.video_export import export_video
from simmim_tf.models.simmim_video_qa import SimMIMVideoQA
from simmim_tf.plotting import memory_strip_figure
from simmim_tf.training.run_config import RunConfig
from simmim_tf.training.run_evaluation import evaluate_video_qa
from simmim_tf.training.video_trainer import train_video_qa

NUM_CLIPS = 600  # clips to generate (8 frames each)
MINUTES = 4.0  # training time
DATA = f"notebook_data/moving_shapes_{NUM_CLIPS}"
RUN = "notebook_data/run_video"
EXPORT = "notebook_data/export_video"

# %% [markdown]
# ## The clips
# Each clip is a folder of frames; `questions.jsonl` names it, and
# `tracks.jsonl` holds every object's position at every frame (the answers
# are computed from it).

# %%
if not os.path.isfile(os.path.join(DATA, "questions.jsonl")):
    moving_shapes.generate(DATA, NUM_CLIPS, seed=0, num_test=max(8, NUM_CLIPS // 10))
test = load_clip_split(DATA, "test")
print(f"{len(test.frames)} test clips, {len(test)} questions; e.g. {test.questions[0]!r}")
fig, axes = plt.subplots(1, test.frames.shape[1], figsize=(10, 1.6))
for t, ax in enumerate(axes):
    ax.imshow(test.frames[0, t], interpolation="nearest")
    ax.set_title(f"frame {t}", fontsize=8)
    ax.axis("off")
plt.show()

# %% [markdown]
# ## Training
# The questions of one clip share a batch, so its frames are encoded once
# for them; a share of the training clips is held out to keep the best
# epoch (`RUN/best/`). A finished run is reused.

# %%
if not os.path.isfile(os.path.join(RUN, "task.json")):
    config = RunConfig(data=DATA, task="video-qa", minutes=MINUTES, validation_fraction=0.05)
    train_video_qa(config, RUN, verbose=2)
model = SimMIMVideoQA.from_preset(RUN)

# %% [markdown]
# ## Accuracy per family
# Descriptive questions need one frame; motion, events and order need the
# memory.

# %%
accuracy = evaluate_video_qa(RUN, DATA)
for family in ("descriptive", "motion", "events", "order", "overall"):
    print(f"{family:12s} {100 * accuracy[family]['accuracy']:5.1f}%")

# %% [markdown]
# ## On the device, frame by frame
# The export writes a frame step (frame and state in, state out) and an
# answer step (last frame, state and question in, answer out); the edge
# runtime keeps one state of fixed size, whatever the stream's length.

# %%

preprocessor = model.preprocessor
export_video(
    model, preprocessor.question_tokenizer(), preprocessor.answers, "notebook_data/export_video"
)
answerer = EdgeVideoAnswerer("notebook_data/export_video", "float32")
clip = test.clip_index[0]
for frame in test.frames[clip]:
    answerer.push(frame)
answer = answerer.answer(test.questions[0])
print(
    f"{test.questions[0]!r}: {answer['answer']} ({answer['probability']:.0%}); "
    f"expected {test.answers[0]}; state {answerer.state.shape} after {answerer.frames_seen} frames"
)

# %% [markdown]
# ## Where the memory looked
# Each slot's read attention over the regions of each frame (the three
# slots with the most concentrated reads).

# %%
reads = model.memory_reads(test.frames[clip])
memory_strip_figure(test.frames[clip], reads, title=test.questions[0])
plt.show()
