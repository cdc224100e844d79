"""Ctrl-C as a clean stop between training batches, so the last finished epoch's checkpoint stays intact."""
from __future__ import annotations

import signal
import sys
import threading
from typing import Any

import tensorflow as tf


class StopRequest(tf.keras.callbacks.Callback):
    """Turns Ctrl-C into a clean stop at the next batch boundary.

    A KeyboardInterrupt raised inside TensorFlow's C++ code can surface as another error type
    (``SystemError``), so while installed the first Ctrl-C only sets a flag, and this callback
    raises ``KeyboardInterrupt`` from Python between batches. A second Ctrl-C interrupts at once.
    """

    def __init__(self) -> None:
        super().__init__()
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, self._previous or signal.default_int_handler)
        print("\nCtrl-C: stopping at the end of this batch (press again to quit at once)", file=sys.stderr, flush=True)

    def check(self) -> None:
        if self.requested:
            raise KeyboardInterrupt

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.check()

    def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.check()
