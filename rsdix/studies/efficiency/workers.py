"""Several study processes on one machine, each taking the next unit of work nobody holds: a unit
(stage 1, a learning curve, a run) is claimed by creating ``<claims>/<name>`` exclusively with the
process id in it, and released when its result is recorded. A claim whose process is gone is stale
and taken over, so a killed worker's unit is redone on resume.

    claims = Claims(run_dir / "claims")
    work_through(units, name=..., finished=..., run=..., claims=claims)   # returns when all are finished
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Sequence

from rsdix.log import get_logger

log = get_logger(__name__)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # another user's live process
        return True
    return True


class Claims:
    """Exclusive claims on named units of work, one file each, in ``folder``."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def _path(self, name: str) -> Path:
        return self.folder / name.replace(os.sep, "_")

    def holder(self, name: str) -> int | None:
        try:
            return int(self._path(name).read_text().strip() or 0) or None
        except (FileNotFoundError, ValueError):
            return None

    def take(self, name: str) -> bool:
        """True when this process now holds ``name`` (free, stale or already ours), else False."""
        path = self._path(name)
        for _ in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pid = self.holder(name)
                if pid == os.getpid():
                    return True
                if pid is not None and alive(pid):
                    return False
                path.unlink(missing_ok=True)     # stale: its process is gone
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(str(os.getpid()))
            return True
        return False

    def release(self, name: str) -> None:
        if self.holder(name) == os.getpid():
            self._path(name).unlink(missing_ok=True)


def work_through(units: Sequence, *, name: Callable, finished: Callable[[], set], run: Callable,
                 claims: Claims, wait: bool = True, poll_s: float = 30.0,
                 stop: Callable[[object], bool] | None = None) -> bool:
    """Run every unit whose ``name(unit)`` is not in ``finished()`` and that no live worker holds, in
    order; then, with ``wait``, wait for the units other workers hold. ``stop(unit)`` True ends the
    loop before that unit (a time budget). Returns False when stopped, else True."""
    waited = False
    while True:
        done = finished()
        pending = [u for u in units if name(u) not in done]
        if not pending:
            return True
        ran = False
        for unit in pending:
            key = name(unit)
            if key in finished():
                continue
            if stop is not None and stop(unit):
                return False
            if not claims.take(key):
                continue
            try:
                run(unit)
            finally:
                claims.release(key)
            ran = True
        if not ran:
            if not wait:
                return True
            if not waited:
                log.info(f"waiting for {len(pending)} unit(s) other workers hold")
                waited = True
            time.sleep(poll_s)
