"""The data-efficiency study (issue #18): does OT self-distillation (RSDiX) make CLIP training more
data-efficient? Paired seeds, learning curves that justify the training length, paired statistics.

    from rsdix.efficiency.study import study, write_report
    study("cpu")                      # learning curves, every arm x share x seed (resumable), the report
    write_report("figures/study")     # paired differences, figures and STUDY.md from the stored rows

Modules: :mod:`~rsdix.efficiency.config` (what the study trains), :mod:`~rsdix.efficiency.shared`
(caches shared by all runs of a process), :mod:`~rsdix.efficiency.arms` (one arm's training
config and run, the pairing), :mod:`~rsdix.efficiency.check` (the metrics of a run),
:mod:`~rsdix.efficiency.runs` (the grid, its order, rows and resume), :mod:`~rsdix.efficiency.curves`
(learning curves and the plateau length), :mod:`~rsdix.efficiency.stats` (paired statistics),
:mod:`~rsdix.efficiency.plots`, :mod:`~rsdix.efficiency.report` (tables, the answer),
:mod:`~rsdix.efficiency.study` (end to end, STUDY.md).
"""
