"""Error types, and the guard every metric passes its numbers through (:func:`require_finite`). Every
error about bad input names the file or entry and what is wrong."""
from __future__ import annotations

import numpy as np


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


def require_finite(values, where: str, what: str = "rows", allow_neg_inf: bool = False, hint: str = "") -> None:
    """Raise :class:`DataError` ``where: k of n <what> are NaN or infinite: rows [...]`` when any
    row of ``values`` (array, tensor, Series; a row is the first axis) holds NaN or +-inf.
    ``allow_neg_inf``: -inf is a legitimate score ("never this class"), NaN and +inf are not.
    ``hint`` ends the message (e.g. where the values came from)."""
    if hasattr(values, "detach"):  # a torch tensor (bfloat16 has no numpy form)
        values = values.detach().float().cpu().numpy()
    arr = np.asarray(values, dtype=float)
    bad = np.isnan(arr) | (arr == np.inf) if allow_neg_inf else ~np.isfinite(arr)
    if arr.ndim == 0:
        if bad:
            raise DataError(where, f"the {what} value is {arr!r}, not a finite number{hint}")
        return
    rows = bad.reshape(len(arr), -1).any(axis=1) if arr.ndim > 1 else bad
    if rows.any():
        idx = np.flatnonzero(rows)
        kind = "NaN or +inf" if allow_neg_inf else "NaN or infinite"
        shown = ", ".join(str(i) for i in idx[:5]) + (", ..." if len(idx) > 5 else "")
        raise DataError(where, f"{len(idx)} of {len(arr)} {what} are {kind}: rows {shown}{hint}")
