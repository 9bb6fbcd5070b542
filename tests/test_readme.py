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
