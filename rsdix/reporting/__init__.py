"""Reporting: the run's notebooks and its summary; knows no study (rows name their own section).

Modules:

* ``reproduce``: runs the numbered notebooks through papermill (``run``), skipping the up-to-date
  ones, then writes the summary;
* ``summary``: ``RESULTS.md`` (headline numbers beside the published ones, the environment) and
  the README's compact results table.
"""
