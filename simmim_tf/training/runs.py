"""A run folder is a preset: writing it so that a kill loses nothing, and
loading it back."""

import contextlib
import os
import shutil

from simmim_tf.models.simmim_vqa import SimMIMVQA


def save_preset_atomically(model, preset_dir):
    """`model.save_to_preset(preset_dir)` such that a kill leaves either the
    previous preset files or the new ones, never a half-written file.

    The preset is written to a temporary folder beside it, then each file is
    moved into place (`os.replace`), `task.json` last: `from_preset` refuses
    a folder without it.
    """
    preset_dir = os.path.abspath(preset_dir)
    tmp = preset_dir.rstrip(os.sep) + ".tmp_preset"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_to_preset(tmp)
    files = [
        os.path.relpath(os.path.join(root, name), tmp)
        for root, _, names in os.walk(tmp)
        for name in names
    ]
    files.sort(key=lambda name: name == "task.json")
    for name in files:
        os.makedirs(os.path.dirname(os.path.join(preset_dir, name)), exist_ok=True)
        os.replace(os.path.join(tmp, name), os.path.join(preset_dir, name))
    shutil.rmtree(tmp, ignore_errors=True)


def load_run(run_dir):
    """The trained `SimMIMVQA` (with its preprocessor) of a finished run, or of
    any preset; an unfinished run is refused by `check_preset_folder`."""
    return SimMIMVQA.from_preset(run_dir)


@contextlib.contextmanager
def removed_if_nothing_trained(run_dir):
    """A run folder this call creates is removed again when training fails
    before an epoch is done (a bad record, a wrong option, Ctrl-C during
    the first epoch): a failed start leaves nothing half-written behind. A
    folder that existed before, or holds a finished epoch (`backup/`,
    `best/`), is kept.
    """
    fresh = not os.path.exists(run_dir)
    try:
        yield
    except BaseException:
        trained = any(os.path.exists(os.path.join(run_dir, d)) for d in ("backup", "best"))
        if fresh and not trained:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
