"""README's Python quick start runs as written, and README stays a guide."""

import os
import re

from tests.conftest import run_python

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")


def _python_blocks():
    with open(README) as f:
        return re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)


def test_quick_start_runs_as_written(tmp_path):
    (block,) = _python_blocks()
    ran = run_python(block, tmp_path, timeout=900)
    assert ran.returncode == 0, ran.stderr[-3000:]
    for path in ("quickstart_model/task.json", "quickstart_export/model_int8.tflite"):
        assert os.path.isfile(tmp_path / path), path
    lines = ran.stdout.strip().splitlines()
    # The edge answer names the word it did not know.
    assert lines[-1].endswith("['zebra']"), lines[-3:]
    assert any(" -> " in line for line in lines), lines[-5:]


def test_readme_is_a_short_guide():
    with open(README) as f:
        text = f.read()
    assert len(text.splitlines()) < 250
    assert text.index("```python") < text.index("## Command-line quick start")
    # Exactly the two set-up commands.
    assert re.findall(r"^make (\w+)", text, flags=re.M) == ["demo", "test"]
    for link in re.findall(r"\]\((docs/[^)#]+)", text):
        assert os.path.isfile(os.path.join(ROOT, link)), link


def _block(path, language, heading):
    """The first ```language block after `heading` in a Markdown file."""
    with open(path) as f:
        text = f.read()
    start = text.index(heading)
    return re.search(rf"```{language}\n(.*?)```", text[start:], flags=re.S).group(1)


def test_own_data_section_runs_as_written(tmp_path):
    """README's "Your own data": a CSV converted by docs/data.md's snippet,
    then validate, train, evaluate, export and predict as written (the
    training budget cut from 10 minutes to a quarter of one)."""
    import csv
    import json
    import shlex
    import shutil
    import subprocess
    import sys

    from PIL import Image

    from simmim_tf.data import sort_of_clevr

    generated = str(tmp_path / "generated")
    sort_of_clevr.generate(generated, num_images=40, seed=5, progress=False)
    images = tmp_path / "my_data" / "images"
    images.mkdir(parents=True)
    with open(os.path.join(generated, "questions.jsonl")) as f:
        records = [json.loads(line) for line in f]
    names = {}
    for r in records:  # the images as a user has them: JPEG files with their own names
        if r["image"] not in names:
            names[r["image"]] = "cat1.jpg" if not names else f"photo{len(names)}.jpg"
            with Image.open(os.path.join(generated, r["image"])) as image:
                image.convert("RGB").save(images / names[r["image"]], quality=95)
    with open(tmp_path / "my_data" / "labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "question", "answer"])
        for r in records:
            writer.writerow([names[r["image"]], r["question"], r["answer"]])
    shutil.rmtree(generated)

    converter = _block(os.path.join(ROOT, "docs", "data.md"), "python", "Any other table")
    ran = run_python(converter, tmp_path)
    assert ran.returncode == 0, ran.stderr[-3000:]
    commands = _block(README, "sh", "## Your own data").replace("--minutes 10", "--minutes 0.25")
    for line in commands.splitlines():
        argv = shlex.split(line, comments=True)
        assert argv[0] == "simmim-tf", line
        out = subprocess.run(
            [sys.executable, "-m", "simmim_tf.cli", *argv[1:]],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": ROOT},
            timeout=600,
        )
        assert out.returncode == 0, (line, out.stdout[-2000:], out.stderr[-2000:])
    assert os.path.isfile(tmp_path / "my_run" / "eval.json")
    # predict: an answer with its probability, and the words it did not know.
    answers = {r["answer"] for r in records}
    first = out.stdout.splitlines()[0]
    assert first.split(" (")[0] in answers and first.endswith("%)"), out.stdout
    assert "words the model does not know" in out.stdout and "animal" in out.stdout
