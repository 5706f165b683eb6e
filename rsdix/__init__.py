"""rsdix: lightweight, data-efficient vision-language models for remote sensing.

A thin package behind the numbered notebooks, one sub-package per pipeline stage, imports
running one way: ``data`` -> ``s2`` -> ``models`` -> ``training`` -> ``captioning`` /
``evaluation`` -> ``studies`` -> ``reporting`` (and ``benchmarks``, ``cli`` on top). The root holds
the core every stage uses: ``errors``, ``paths``, ``config``, ``log``, ``utils``, ``intervals``,
``viz``, ``results`` (docs/architecture.md). Import the module you need; nothing heavy is
imported here.
"""
__version__ = "0.1.0"

from rsdix.errors import ConfigError, DataError, OfflineError, RsdixError  # noqa: F401
from rsdix.paths import cache_dir, data_root, figures_dir, repo_root, runs_dir  # noqa: F401
