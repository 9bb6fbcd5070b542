"""What reaches the terminal from `simmim-tf`: the command's own output.

TensorFlow 2.21 and LiteRT log from C++ straight to file descriptor 2:
absl's "All log messages before absl::InitializeLog() is called ...", the
oneDNN and CUDA probes at import and at the first op, and "INFO: Created
TensorFlow Lite XNNPACK delegate for CPU." for every interpreter.
`TF_CPP_MIN_LOG_LEVEL` no longer reaches these (absl logs everything to
stderr until it is initialised, and nothing here initialises it), so the
command line routes descriptor 2 through a filter that drops them and
passes everything else (Python's warnings and tracebacks, progress bars)
on at once. `simmim-tf --verbose` leaves descriptor 2 alone.
"""

import atexit
import contextlib
import os
import re
import sys
import threading
import time

# absl's and TensorFlow's native log lines ("I0000 00:00:1796607702.880118
# 13839 port.cc:153] ..."), absl's notice before them, LiteRT's delegate
# line. Fatal ("F") lines are kept.
NATIVE_LOG_LINE = re.compile(
    rb"(WARNING: All log messages before absl::InitializeLog\(\)"
    rb"|[IWE]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\]"
    rb"|INFO: Created TensorFlow Lite XNNPACK delegate)"
)
# A partial line that may still become one of those is held back until its
# end: LiteRT writes "INFO: ", the message and the newline as three writes.
LITERAL_STARTS = (
    b"WARNING: All log messages before absl::InitializeLog()",
    b"INFO: Created TensorFlow Lite XNNPACK delegate",
)
ABSL_START = re.compile(rb"[IWE]\d{0,4}( |$)")


def _may_become_log_line(partial):
    literal = any(s.startswith(partial) or partial.startswith(s) for s in LITERAL_STARTS)
    return literal or bool(ABSL_START.match(partial))


_stderr_was_terminal = None


def stderr_is_terminal():
    """Whether the user's stderr is a terminal (also once it is filtered)."""
    if _stderr_was_terminal is not None:
        return _stderr_was_terminal
    return sys.stderr.isatty()


def _pass_on(pending, write):
    """Writes the lines of `pending` that are not native log lines; returns
    the partial line kept back (it may become one)."""
    *lines, rest = re.split(rb"(?<=[\n\r])", pending)
    out = b"".join(line for line in lines if not NATIVE_LOG_LINE.match(line))
    if rest and not _may_become_log_line(rest):
        out, rest = out + rest, b""
    if out:
        write(out)
    return rest


def filter_native_logs():
    """Routes file descriptor 2 through a thread that drops native log lines.

    Call once, before TensorFlow or LiteRT loads. At exit the descriptor is
    restored and what is left is written out.
    """
    global _stderr_was_terminal
    if _stderr_was_terminal is not None:
        return
    sys.stderr.flush()
    _stderr_was_terminal = os.isatty(2)
    original = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def write(data):
        os.write(original, data)

    def pump():
        pending = b""
        while chunk := os.read(read_end, 65536):
            pending = _pass_on(pending + chunk, write)
        if pending and not NATIVE_LOG_LINE.match(pending):
            write(pending)

    thread = threading.Thread(target=pump, name="native-log-filter", daemon=True)
    thread.start()

    def restore():
        sys.stderr.flush()
        os.dup2(original, 2)  # closes the pipe's last write end: the pump sees its end
        thread.join(timeout=5)

    atexit.register(restore)


@contextlib.contextmanager
def step(what, stream=None):
    """Prints "what ..." as a piece of long work begins and "  done (12 s)"
    as it ends: progress for work that has no steps to count (a
    conversion, loading a split). Each on its own line, so that a progress
    bar inside the work does not overwrite it.

    Example:
    >>> with step("converting int8"):
    ...     pass
    converting int8 ...
      done (0 s)
    """
    stream = stream or sys.stdout
    print(f"{what} ...", file=stream, flush=True)
    start = time.perf_counter()
    yield
    print(f"  done ({time.perf_counter() - start:.0f} s)", file=stream, flush=True)
