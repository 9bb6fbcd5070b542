"""Writing a file so that a kill leaves the old file or the new one, never
half of either: write to a temporary name beside it, then rename."""

import os


def write_atomically(path, data):
    """Writes `data` (bytes or str) to `path` through a temporary file and `os.replace`."""
    tmp = path + ".tmp"
    with open(tmp, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    os.replace(tmp, path)
