"""rsdix: lightweight, data-efficient vision-language models for remote sensing.

A thin package behind the numbered notebooks: each module holds one idea
(`data`, `models`, `losses`, `distill`, `train`, `evaluate`, `captioning`,
`metrics`, `s2lcd`, `stats`, ...). Import the module you need; nothing heavy is
imported here.
"""
__version__ = "0.1.0"

from rsdix.errors import ConfigError, DataError, OfflineError, RsdixError  # noqa: F401
from rsdix.paths import cache_dir, data_root, figures_dir, repo_root, runs_dir  # noqa: F401
