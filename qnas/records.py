"""What every result file records: the command line, library versions, seed, time."""
from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

PACKAGES = ("tensorflow", "tf-keras", "larq", "numpy", "larq-compute-engine")


def versions() -> dict[str, str]:
    """Installed versions of the libraries a result depends on (absent ones left out)."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def command_line() -> str:
    """The command that started this process, quoted so it can be pasted back into a shell."""
    return " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv])


def run_record(seed: int | None, **extra: Any) -> dict[str, Any]:
    """The provenance block for a result file."""
    return {"command": command_line(), "seed": seed, "versions": versions(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra}


def write_json_atomic(path: str | Path, payload: Any) -> None:
    """Write JSON so that a crash never leaves a half-written file under the final name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(payload, f, indent=2, default=_jsonable)
        f.write("\n")
    os.chmod(tmp, 0o644)  # mkstemp makes it private; a result file is for everyone to read
    os.replace(tmp, path)


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)
