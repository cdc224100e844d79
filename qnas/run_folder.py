"""One run's output folder, for the search and ``train_arc.py`` alike: checked before any work, claimed after.

A run's folder is checked first, writing nothing (``RunFolder.check``): it must be writable, must not
hold a finished run when that is final, must not hold an unfinished one unless resuming, and a resume
must keep the settings that define the run. Only a checkpoint or a result makes a folder a run: a
start that failed before its first checkpoint leaves nothing worth keeping, so the corrected command
just starts again. Once every input has been checked, ``claim`` creates the folder, clears what such a
failed start left behind, and writes the run's settings file.
"""
from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from qnas.checkpoints import checkpoint_prefixes, folder_write_problem
from qnas.errors import UserInputError
from qnas.records import write_json_atomic

INCOMPLETE = "INCOMPLETE"
PROVENANCE = frozenset({"command", "versions", "time"})  # recorded beside the settings; a resume may differ there
START_OVER = "choose another --output_dir (or delete that folder) to start over"


def changed_settings(saved: Mapping[str, Any], now: Mapping[str, Any], may_change: Iterable[str] = ()) -> list[str]:
    """Keys (``a.b`` for nested ones) whose values differ between two settings, except those that may change."""
    may_change = set(may_change)
    out = []
    for key in sorted(set(saved) | set(now)):
        if key in may_change:
            continue
        old, new = saved.get(key), now.get(key)
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            out += [f"{key}.{k}" for k in changed_settings(old, new, may_change)]
        elif old != new:
            out.append(f"{key}: {old!r} there, {new!r} now")
    return out


class RunFolder:
    """The folder of one run, its settings file (``settings_file``, a JSON object) and what a failed start leaves."""

    def __init__(self, path: str | Path, settings_file: str, subfolders: Iterable[str] = ("checkpoints", "tensorboard"),
                 stale: Iterable[str] = (), finished_is_final: bool = True, may_change: Iterable[str] = ()):
        self.path = Path(path)
        self.settings_path = self.path / settings_file
        self.subfolders = tuple(subfolders)
        self.stale = tuple(stale)
        self.finished_is_final = finished_is_final
        self.may_change = frozenset(may_change)

    def finished(self) -> bool:
        return (self.path / "result.json").exists()

    def holds_run(self) -> bool:
        """A folder holds a run once it has a checkpoint or a result."""
        return self.finished() or bool(checkpoint_prefixes(self.path / "checkpoints"))

    def check(self, resume: bool, settings: Mapping[str, Any] | None = None) -> bool:
        """Refuse what cannot work, writing nothing; True when there is a run to resume."""
        for folder in (self.path, *(self.path / name for name in self.subfolders)):
            problem = folder_write_problem(folder)
            if problem:
                raise UserInputError(f"cannot write to --output_dir {str(self.path)!r} ({problem}); "
                                     f"choose a writable --output_dir")
        if self.finished() and self.finished_is_final:
            raise UserInputError(f"{self.path} already holds a finished run (result.json); "
                                 f"choose another --output_dir or delete that folder to train again")
        if not self.holds_run():
            return False
        if not resume:
            state = "a finished run (result.json)" if self.finished() else "an unfinished run"
            raise UserInputError(f"{self.path} already holds {state}; pass --resume to continue it, or {START_OVER}")
        if settings is not None:
            self.check_settings(settings)
        return True

    def saved_settings(self) -> dict[str, Any] | None:
        """The settings file of the run in this folder; None when there is none."""
        if not self.settings_path.exists():
            return None
        try:
            saved = json.loads(self.settings_path.read_text())
        except (OSError, ValueError):
            saved = None
        if not isinstance(saved, dict):
            raise UserInputError(f"{self.settings_path} is damaged, so the settings of that run are unknown; "
                                 f"{START_OVER}")
        return saved

    def check_settings(self, settings: Mapping[str, Any]) -> None:
        """A resume keeps every setting that defines the run (``may_change`` aside)."""
        saved = self.saved_settings()
        if saved is None:
            return
        diff = changed_settings({k: saved.get(k) for k in settings}, settings, self.may_change | PROVENANCE)
        if diff:
            raise UserInputError(f"cannot resume the run in {self.path} with different settings ({'; '.join(diff)}); "
                                 f"use the original settings, or {START_OVER}")

    def claim(self, settings: Mapping[str, Any], resuming: bool, resume: bool, log: Callable[[str], None],
              marker: bool = False) -> None:
        """Create the folder and prove it writable; then, for a resumed run, check its settings; for a new run,
        clear a failed start's leftovers, write the settings and (``marker``) mark the run ``INCOMPLETE``."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.path):
                pass
        except OSError as err:
            raise UserInputError(f"cannot write to --output_dir {str(self.path)!r} ({err.strerror or err}); "
                                 f"choose a writable --output_dir") from None
        if resuming:
            self.check_settings(settings)
        else:
            if resume:
                log(f"nothing to resume in {self.path}; starting a new run")
            for pattern in self.stale:
                for path in self.path.glob(pattern):
                    path.unlink()
            if marker:
                (self.path / INCOMPLETE).write_text("This run has not finished: result.json is written only at the "
                                                    "very end.\nContinue it with the same command plus --resume.\n")
        write_json_atomic(self.settings_path, dict(settings))
