"""The data-efficiency study (issue #18): does OT self-distillation (RSDiX) make CLIP training more
data-efficient? Paired seeds, learning curves that justify the training length, paired statistics.

    from rsdix.studies.efficiency.study import study, write_report
    study("cpu")                      # learning curves, every arm x share x seed (resumable), the report
    write_report("figures/study")     # paired differences, figures and STUDY.md from the stored rows

Modules: :mod:`~rsdix.studies.efficiency.design` (what the study trains), :mod:`~rsdix.studies.efficiency.shared`
(caches shared by all runs of a process), :mod:`~rsdix.studies.efficiency.arms` (one arm's training
config and run, the pairing), :mod:`~rsdix.studies.efficiency.endpoints` (the metrics of a run),
:mod:`~rsdix.studies.efficiency.runs` (the grid, its order, rows and resume), :mod:`~rsdix.studies.efficiency.curves`
(learning curves and the plateau length), :mod:`~rsdix.studies.efficiency.stats` (paired statistics),
:mod:`~rsdix.studies.efficiency.plots`, :mod:`~rsdix.studies.efficiency.analysis` (tables, the answer),
:mod:`~rsdix.studies.efficiency.study` (end to end, STUDY.md).
"""
