"""The ``rsdix`` logger, and silencing third-party messages that say nothing to the user.

Every module logs through ``log = get_logger(__name__)`` (a child of the ``rsdix`` logger).
Nothing is configured at import: :func:`setup` installs one stderr handler with a short format
(``[module] message``), and is called once by the ``rsdix`` command line (``--quiet``: warnings
only, ``--verbose``: debug) and by the notebooks' first call (:class:`rsdix.paths.RunDirs`).
It leaves the logging of a program that configured logging itself (a root handler, or a level
or handler on the ``rsdix`` logger) alone: rsdix's records then reach that configuration.
``RSDIX_LOG_LEVEL`` (``DEBUG``, ``INFO``, ``WARNING`` ...) sets the default level; the command
line sets it for the notebooks' kernels too.

:func:`quiet_messages` hides named messages of named loggers while a call runs (open_clip's
"No pretrained weights loaded" for the presets built here, transformers' LOAD REPORT of
MiniLM's unused pooler), not for the rest of the program. :func:`warnings_to_log` sends the
warnings a library raises while a call runs (sklearn's ConvergenceWarning in the probes) to the
log, one line per kind with a count, instead of a printed warning per occurrence.
"""
from __future__ import annotations

import logging
import os
import sys
import warnings
from collections import Counter
from contextlib import contextmanager
from typing import Callable, Iterator

ROOT = "rsdix"
LEVEL_ENV = "RSDIX_LOG_LEVEL"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def get_logger(name: str = ROOT) -> logging.Logger:
    """The logger of an rsdix module (``__name__``), below the ``rsdix`` logger."""
    return logging.getLogger(name if name == ROOT or name.startswith(ROOT + ".") else f"{ROOT}.{name}")


class ShortFormatter(logging.Formatter):
    """``[reproduce] message``; warnings and errors say so: ``[models] warning: message``."""

    def format(self, record: logging.LogRecord) -> str:
        short = record.name.rsplit(".", 1)[-1]
        text = record.getMessage()
        if record.levelno >= logging.WARNING:
            text = f"{record.levelname.lower()}: {text}"
        elif record.levelno < logging.INFO:
            text = f"debug: {text}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return f"[{short}] {text}"


class StderrHandler(logging.StreamHandler):
    """Writes to the current ``sys.stderr`` (a notebook kernel and pytest replace it)."""

    def __init__(self):
        super().__init__()
        self.setFormatter(ShortFormatter())

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # logging.StreamHandler.__init__ assigns it
        pass


_HANDLER = StderrHandler()


def level_from_env(default: str = "INFO") -> int:
    name = os.environ.get(LEVEL_ENV, default).strip().upper() or default
    return logging.getLevelName(name) if name in LEVELS else logging.INFO


def configured() -> bool:
    """True once :func:`setup` installed rsdix's handler."""
    return _HANDLER in logging.getLogger(ROOT).handlers


def setup(level: int | str | None = None, force: bool = False) -> logging.Logger:
    """Configure the ``rsdix`` logger once: a stderr handler, ``level`` (default
    ``$RSDIX_LOG_LEVEL`` or INFO). A second call changes nothing unless ``force``; without
    ``force`` a program's own logging configuration is left as it is."""
    logger = logging.getLogger(ROOT)
    if isinstance(level, str):
        level = logging.getLevelName(level.upper())
    if configured():
        if force and level is not None:
            logger.setLevel(level)
        return logger
    user_config = logging.getLogger().handlers or logger.handlers or logger.level != logging.NOTSET
    if user_config and not force:
        return logger
    logger.addHandler(_HANDLER)
    logger.setLevel(level if level is not None else level_from_env())
    logger.propagate = False   # the program's root handlers (set up later) would repeat each line
    return logger


@contextmanager
def configured_for(level: int | str) -> Iterator[logging.Logger]:
    """The command line's logging while it runs (``level`` for rsdix and for the kernels it starts);
    the previous state comes back afterwards (``rsdix.cli.main`` called from Python or tests)."""
    logger = logging.getLogger(ROOT)
    saved = (list(logger.handlers), logger.level, logger.propagate, os.environ.get(LEVEL_ENV))
    level_name = level if isinstance(level, str) else logging.getLevelName(level)
    os.environ[LEVEL_ENV] = level_name.upper()
    try:
        yield setup(level, force=True)
    finally:
        logger.handlers[:] = saved[0]
        logger.setLevel(saved[1])
        logger.propagate = saved[2]
        if saved[3] is None:
            os.environ.pop(LEVEL_ENV, None)
        else:
            os.environ[LEVEL_ENV] = saved[3]


class MessageFilter(logging.Filter):
    """Drops the records whose message ``drop(message)`` is true."""

    def __init__(self, drop: Callable[[str], bool]):
        super().__init__()
        self.drop = drop

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except (TypeError, ValueError):  # a malformed third-party record: let it through
            return True
        return not self.drop(text)


def starts_with(*prefixes: str) -> Callable[[str], bool]:
    """A ``drop`` rule for :func:`quiet_messages`: messages starting with one of ``prefixes``."""
    return lambda text: text.startswith(prefixes)


class _RootGuard(logging.Handler):
    """Stands in for a missing root handler while a quiet call runs: ``logging.warning()`` /
    ``logging.info()`` of open_clip would otherwise call ``logging.basicConfig()`` and reformat
    the whole program's logging. Passes warnings on as Python's last-resort handler would."""

    def emit(self, record: logging.LogRecord) -> None:
        if logging.lastResort is not None and record.levelno >= logging.lastResort.level:
            logging.lastResort.handle(record)


@contextmanager
def quiet_messages(rules: dict[str, Callable[[str], bool]]) -> Iterator[None]:
    """While the block runs, drop the records logged on each named logger (``""``: the root
    logger, where ``logging.warning()`` goes) whose message its rule matches; every other
    message, and the logging of the rest of the program, is untouched."""
    filters = []
    for name, drop in rules.items():
        target = logging.getLogger(name or None)
        flt = MessageFilter(drop)
        target.addFilter(flt)
        filters.append((target, flt))
    root = logging.getLogger()
    guard = _RootGuard() if not root.handlers else None
    if guard is not None:
        root.addHandler(guard)
    try:
        yield
    finally:
        for target, flt in filters:
            target.removeFilter(flt)
        if guard is not None:
            root.removeHandler(guard)


@contextmanager
def warnings_to_log(logger: logging.Logger, during: str = "") -> Iterator[None]:
    """Warnings raised while the block runs are logged on ``logger`` instead of printed: one
    warning record per kind (category and the message's first line), with how many times it
    came, after the block (``sklearn ConvergenceWarning x25 during the few-shot probe: lbfgs
    failed to converge ...``)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")   # every occurrence, to count them
        try:
            yield
        finally:
            kinds = Counter((w.category, (str(w.message).strip().splitlines() or [""])[0][:200]) for w in caught)
            for (category, text), n in kinds.items():
                package = category.__module__.partition(".")[0]
                name = category.__name__ if package == "builtins" else f"{package} {category.__name__}"
                logger.warning(f"{name} x{n}{f' during {during}' if during else ''}: {text}")


_WARNED: set[tuple[type, str]] = set()


def warn_once(message: str, category: type[Warning] = UserWarning, stacklevel: int = 2) -> bool:
    """``warnings.warn`` once per process for each (category, message): a data file's warning
    (RSITMD's empty captions, SPICE skipped) read once per training run or dataset would otherwise
    repeat, since every ``warnings.catch_warnings()`` block (the image loader has one) resets
    Python's own once-per-place rule. Returns whether it warned now."""
    if (category, message) in _WARNED:
        return False
    _WARNED.add((category, message))
    warnings.warn(message, category, stacklevel=stacklevel + 1)
    return True


def forget_warned() -> None:
    """Let :func:`warn_once` warn again (a new notebook run in the same kernel; tests)."""
    _WARNED.clear()
