"""What the user reads while work runs: plain flushed lines, plus one in-place status line on a terminal.

When stdout is a file (``>> log``) the status line is never written, so the log holds plain lines only;
``update`` then writes a plain line about every tenth of the work instead.
"""
from __future__ import annotations

import sys
from typing import TextIO

CLEAR_LINE = "\r\033[K"


class Console:
    """The one progress printer of every CLI."""

    def __init__(self, stream: TextIO | None = None, width: int = 110):
        self.stream = stream or sys.stdout
        self.width = width
        self._status_shown = False

    @property
    def tty(self) -> bool:
        return self.stream.isatty()

    def line(self, text: str) -> None:
        """A plain line (a status line on screen is cleared first)."""
        self.clear()
        print(text, file=self.stream, flush=True)

    def status(self, text: str) -> None:
        """Overwrite the status line on a terminal; nothing when writing to a file."""
        if self.tty:
            self.stream.write(CLEAR_LINE + text[: self.width])
            self.stream.flush()
            self._status_shown = True

    def update(self, text: str, step: int, total: int) -> None:
        """Progress of ``step`` of ``total``: the status line on a terminal (kept at the end); in a file a plain
        line at the first and last step and about every tenth in between."""
        if self.tty:
            self.status(text)
            if step == total:
                self.stream.write("\n")
                self._status_shown = False
        elif step in (1, total) or step % max(1, total // 10) == 0:
            self.line(text)

    def clear(self) -> None:
        if self._status_shown:
            self.stream.write(CLEAR_LINE)
            self.stream.flush()
            self._status_shown = False
