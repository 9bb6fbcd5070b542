"""`make install` finds a Python it can use under whatever name it has."""

import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def which_python(path_dir):
    make = shutil.which("make")
    return subprocess.run(
        [make, "-s", "-C", ROOT, "which-python"],
        env={"PATH": str(path_dir), "HOME": os.environ.get("HOME", "/tmp")},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_python_named_python3_is_found(tmp_path):
    os.symlink(sys.executable, tmp_path / "python3")  # no python3.11 on PATH
    found = which_python(tmp_path)
    assert found.returncode == 0, found.stdout + found.stderr
    major, minor = sys.version_info[:2]
    assert found.stdout == f"{tmp_path / 'python3'} (Python {major}.{minor})\n"


def test_no_suitable_python_is_a_one_line_error(tmp_path):
    old = tmp_path / "python3"
    old.write_text('#!/bin/sh\necho "Python 3.8.10"\nexit 1\n')  # fails the version check
    old.chmod(0o755)
    found = which_python(tmp_path)
    assert found.returncode != 0
    assert found.stdout.startswith("error: no Python 3.11 to 3.13 on PATH")
    assert len(found.stdout.splitlines()) == 1
