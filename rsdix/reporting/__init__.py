"""Reporting: the run's notebooks and its summary; knows no study (rows name their own section).

Modules:

* ``reproduce``: runs the numbered notebooks through papermill (``run``), skipping the up-to-date
  ones, then writes the summary;
* ``summary``: ``RESULTS.md`` (headline tables per task, the published numbers once per dataset,
  every row collapsed, the environment) and the README's results block, also regenerated from
  the committed ``figures/<profile>/results.csv`` (``regenerate_summary``);
* ``tables``: those tables (rows = models, columns = datasets, cells = mean ± CI (n=seeds)) and
  the published reference with parameter counts;
* ``config_reference``: ``docs/configuration.md`` from the config dataclasses;
* ``dry_run``: the paper profile's dry run (``rsdix reproduce --profile paper --dry-run``),
  offline on the stand-ins of ``standins`` (random-weight OpenAI CLIP, RemoteCLIP, GPT-2 in the
  hub's formats) and ``standin_data`` (the dry run's data root), configs capped by
  ``rsdix/configs/dry_run.yaml``.
"""
