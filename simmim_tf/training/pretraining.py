"""`pretrain`: masked-image pretraining on a folder of images, as
`simmim-tf pretrain` runs it.

Output folder (what `simmim-tf train --init-from` takes):
    config.json, metadata.json, model.weights.h5
                            the backbone, a keras-hub preset
    pretrainer.json, pretrainer.weights.h5
                            masking settings and the mask token and head
    history.json            per-epoch loss (L1 on masked pixels, in [-1, 1] units)
    reconstructions.png     masked input | reconstruction | original
    skipped_images.txt      with skip_bad_images: each file left out, and why
    backup/                 BackupAndRestore state while training runs
"""

import json
import os

import keras
import numpy as np
from tqdm import tqdm

from simmim_tf.atomic_files import write_atomically
from simmim_tf.errors import SimMIMInputError
from simmim_tf.models.simmim_masked_image_pretrainer import (
    SimMIMMaskedImagePretrainer,
    pretraining_backbone,
)
from simmim_tf.models.simmim_presets import SIMMIM_PRESETS
from simmim_tf.models.summed_then_clipped import SimMIMAdamW
from simmim_tf.preprocessing.image_loading import image_files, load_image
from simmim_tf.training.run_progress import fit_progress
from simmim_tf.training.vqa_trainer import warmup_cosine_schedule

FIGURE_IMAGES = 4


def load_images(files, image_size, skip_bad=False):
    """uint8 (n, size, size, 3) and the list of (file, why) skipped. An
    unreadable file stops with its name unless `skip_bad`. image_size None:
    the first readable image's larger side."""
    images, skipped = [], []
    for path in tqdm(files, desc="reading images", unit="image", leave=False):
        try:
            if image_size is None:
                image_size = max(load_image(path).shape[:2])
            images.append(load_image(path, image_size))
        except SimMIMInputError as e:
            if not skip_bad:
                raise SimMIMInputError(f"{e} (--skip-bad-images leaves such files out)") from None
            skipped.append((path, str(e)))
    if not images:
        raise SimMIMInputError("no readable image among the files given")
    return np.stack(images), skipped


def pretrain(
    images_dir,
    out_dir,
    preset="tiny",
    image_size=None,
    image_layers=None,
    epochs=10,
    batch_size=64,
    learning_rate=1e-3,
    weight_decay=0.05,
    mask_ratio=0.6,
    mask_patch_size=None,
    skip_bad_images=False,
    seed=0,
    verbose="auto",
):
    """Pretrains the preset's image encoder on every image under `images_dir`
    and writes `out_dir`. Returns (pretrainer, history dict).

    image_size: side the images are resized to; default the first readable
    image's larger side. image_layers: default the preset's, 2 for a preset
    that has none (`tiny`).
    """
    _check_options(epochs, batch_size, image_layers)
    keras.utils.set_random_seed(seed)
    files = image_files(images_dir)
    images, skipped = load_images(files, image_size, skip_bad_images)
    image_size = images.shape[1]
    os.makedirs(out_dir, exist_ok=True)
    _report_skipped(skipped, out_dir, len(images))
    if image_layers is None:  # the preset's own, or 2 for one that has none
        image_layers = SIMMIM_PRESETS[preset].get("image_layers") or 2
    backbone = pretraining_backbone(preset, image_size, image_layers=image_layers)
    pretrainer = SimMIMMaskedImagePretrainer(backbone, mask_patch_size, mask_ratio, seed)
    steps = epochs * int(np.ceil(len(images) / batch_size))
    schedule = warmup_cosine_schedule(learning_rate, steps, warmup_fraction=0.05)
    pretrainer.compile(SimMIMAdamW(schedule, weight_decay=weight_decay, clipnorm=1.0))
    fit_verbose, progress = fit_progress(verbose)
    callbacks = [
        # A killed run started again with the same command resumes from the
        # last finished epoch.
        keras.callbacks.BackupAndRestore(os.path.join(out_dir, "backup")),
        keras.callbacks.TerminateOnNaN(),
        *progress,
    ]
    history = pretrainer.fit(
        images, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=fit_verbose,
        callbacks=callbacks,
    ).history  # fmt: skip
    if not np.all(np.isfinite(history.get("loss", [0.0]))):
        raise RuntimeError("pretraining stopped: the loss became NaN; nothing was written")
    history["steps"] = int(keras.ops.convert_to_numpy(pretrainer.optimizer.iterations))
    source = {"images": os.path.abspath(images_dir), "num_images": len(images)}
    source.update(skipped_images=len(skipped), epochs=epochs, preset=preset)
    pretrainer.save_pretrained(out_dir, source)
    write_atomically(os.path.join(out_dir, "history.json"), json.dumps(history, indent=2))
    save_reconstruction_figure(
        pretrainer, images[:FIGURE_IMAGES], os.path.join(out_dir, "reconstructions.png")
    )
    return pretrainer, history


def _check_options(epochs, batch_size, image_layers):
    for name, value, least in (("epochs", epochs, 1), ("batch_size", batch_size, 1)):
        if value < least:
            raise SimMIMInputError(f"{name} must be at least {least}; received {value}")
    if image_layers is not None and image_layers < 1:
        raise SimMIMInputError(f"image_layers must be at least 1; received {image_layers}")


def reconstruct(pretrainer, images, region_mask=None):
    """(masked input, reconstruction, original) as uint8 arrays: the
    reconstruction keeps the visible pixels and shows the prediction on the
    masked ones, as SimMIM's figures do."""
    out = pretrainer(images, region_mask)
    mask = keras.ops.convert_to_numpy(out["pixel_mask"])
    predicted = (keras.ops.convert_to_numpy(out["reconstruction"]) + 1.0) * 127.5
    predicted = np.clip(predicted, 0, 255)
    original = images.astype(np.float32)
    masked = original * (1 - mask) + 127.5 * mask
    composed = original * (1 - mask) + predicted * mask
    return tuple(a.round().astype(np.uint8) for a in (masked, composed, original))


def save_reconstruction_figure(pretrainer, images, path):
    from simmim_tf.plotting import plt, reconstruction_figure

    loss_title = f"mask ratio {pretrainer.mask_ratio:g}, mask patch {pretrainer.mask_patch_size} px"
    figure = reconstruction_figure(*reconstruct(pretrainer, images), title=loss_title)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _report_skipped(skipped, out_dir, num_kept):
    path = os.path.join(out_dir, "skipped_images.txt")
    if not skipped:
        if os.path.exists(path):
            os.remove(path)
        return
    with open(path, "w") as f:
        f.write("".join(f"{file}: {why}\n" for file, why in skipped))
    print(f"skipped {len(skipped)} unreadable image(s); pretraining on {num_kept}; list: {path}")
