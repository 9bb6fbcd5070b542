"""`data inspect`: its counts against the files, and pictures that are drawn."""

import json
import os

import numpy as np
from PIL import Image

from simmim_tf.cli import main
from simmim_tf.data import clevr2d, sort_of_clevr
from simmim_tf.data.folder_inspection import summary


def test_inspect_counts_and_pictures(tmp_path, capsys):
    soc, c2d = str(tmp_path / "soc"), str(tmp_path / "c2d")
    sort_of_clevr.generate(soc, num_images=10, seed=1, progress=False, ternary=True)
    clevr2d.generate(c2d, num_images=10, seed=1, progress=False)
    for folder in (soc, c2d):
        records = [json.loads(x) for x in open(os.path.join(folder, "questions.jsonl"))]
        result = summary(folder)
        assert result["images"] == 10
        assert sum(sum(f.values()) for f in result["questions"].values()) == len(records)
        for family, counts in result["answers"].items():
            assert counts == {
                a: sum(r["answer"] == a and r["family"] == family for r in records) for a in counts
            }
        sheet = str(tmp_path / f"{os.path.basename(folder)}.png")
        assert (
            main(["data", "inspect", "--data", folder, "--sheet", sheet, "--num-images", "8"]) == 0
        )
        out = capsys.readouterr().out
        assert "train: " in out and "answers per family" in out
        for path in (sheet, sheet.replace(".png", "_answers.png")):
            picture = np.asarray(Image.open(path).convert("RGB"), np.float32)
            assert picture.shape[0] > 300 and picture.std() > 10  # drawn, not blank
    assert "ternary" in summary(soc)["answers"]
