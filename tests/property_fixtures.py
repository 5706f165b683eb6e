"""Property tests of the parsers a user feeds (hypothesis): each property is run with a few
examples in ``make test`` (seconds, the same examples every run) and with many more under the
``slow`` marker (new examples each run). A property reads: for any input, either a correct result or
one rsdix error (DataError / ConfigError) that names the input."""
from __future__ import annotations

import os
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FAST, SLOW = 40, 1500   # examples per property: make test, make test-slow
SIZES = [pytest.param(FAST, id="fast"), pytest.param(SLOW, id="many", marks=pytest.mark.slow)]


def run(prop, n: int, *strategies) -> None:
    """Check ``prop`` on ``n`` examples drawn from ``strategies`` (deterministic for the fast run)."""
    config = settings(max_examples=n, deadline=None, database=None, derandomize=n <= FAST, print_blob=True,
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                             HealthCheck.filter_too_much])
    calls = [0]

    def counted(args):
        calls[0] += 1
        return prop(*args)

    try:
        config(given(st.tuples(*strategies))(counted))()
    finally:   # RSDIX_PROPERTY_LOG=FILE: one line per property run (name, examples asked, inputs tried)
        if os.environ.get("RSDIX_PROPERTY_LOG"):
            with open(os.environ["RSDIX_PROPERTY_LOG"], "a") as log:
                log.write(f"{prop.__name__} {n} {calls[0]}\n")


# text a user types or a file holds: printable words, separators, quotes, control characters, any unicode
WORDY = st.text(alphabet=string.ascii_letters + string.digits + " ,;\"'=@/.:-_\t\n\r", max_size=30)
TEXT = st.one_of(WORDY, st.text(max_size=30))
