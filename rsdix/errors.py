"""Error types. Every error about bad input names the file or entry and what is wrong."""
from __future__ import annotations


class RsdixError(Exception):
    """Base class of rsdix errors."""


class DataError(RsdixError, ValueError):
    """Bad or missing input data: the message names the file/entry and the problem."""

    def __init__(self, where, problem: str):
        self.where = str(where)
        self.problem = problem
        super().__init__(f"{where}: {problem}")


class ConfigError(RsdixError, ValueError):
    """A configuration that cannot be used (unknown key, wrong type, bad value)."""


class OfflineError(RsdixError, RuntimeError):
    """Something had to be downloaded and could not be (no internet / no hub access)."""
