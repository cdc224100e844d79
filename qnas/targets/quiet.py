"""Keep converter and interpreter chatter out of the user's terminal.

The TFLite and Larq Compute Engine converters are C++ code that writes straight to file
descriptor 2 ("NodeDef mentions attribute ...", MLIR diagnostics, absl logging), and TensorFlow's
Python side adds deprecation warnings. ``quiet()`` points fd 1 and fd 2 at a temporary file for the
duration of a block and silences Python warnings and TF's Python logger; when the block raises, the
captured text is attached to the exception (``err.converter_log``) so nothing useful is lost.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator


@contextlib.contextmanager
def quiet(enabled: bool = True) -> Iterator[None]:
    """Silence fd 1/2 output, Python warnings and TF logging inside the block (a no-op when disabled)."""
    if not enabled:
        yield
        return
    tf_logger = logging.getLogger("tensorflow")
    old_level = tf_logger.level
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    with tempfile.TemporaryFile(mode="w+b") as sink, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tf_logger.setLevel(logging.ERROR)
        for fd in saved:
            os.dup2(sink.fileno(), fd)
        try:
            yield
        except BaseException as err:
            _restore(saved)
            sink.seek(0)
            err.converter_log = sink.read().decode("utf-8", "replace")[-4000:]  # type: ignore[attr-defined]
            raise
        finally:
            _restore(saved)
            tf_logger.setLevel(old_level)


def _restore(saved: dict[int, int]) -> None:
    """Point fds 1 and 2 back at the terminal (idempotent: the duplicates are closed once)."""
    for fd, copy in list(saved.items()):
        sys.stdout.flush() if fd == 1 else sys.stderr.flush()
        os.dup2(copy, fd)
        os.close(copy)
        del saved[fd]
