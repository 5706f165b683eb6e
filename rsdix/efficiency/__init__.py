"""The data-efficiency study (issue #18): does OT self-distillation (RSDiX) make CLIP training more
data-efficient? Paired seeds, learning curves that justify the training length, paired statistics.

    cfg = load_efficiency_config("cpu")
    curves = learning_curves(cfg, out_dir)            # how long InfoNCE needs at each data share
    run_study(cfg, out_dir)                            # every arm x fraction x seed, resumable
    write_report(out_dir)                              # paired differences, figures, STUDY.md

Modules: :mod:`~rsdix.efficiency.config` (what the study trains), :mod:`~rsdix.efficiency.shared`
(caches shared by all runs of a process), :mod:`~rsdix.efficiency.arms` (one arm's training
config and run, the pairing), :mod:`~rsdix.efficiency.check` (the metrics of a run),
:mod:`~rsdix.efficiency.runs` (the grid, its order, rows and resume), :mod:`~rsdix.efficiency.curves`
(learning curves and the plateau length), :mod:`~rsdix.efficiency.stats` (paired statistics),
:mod:`~rsdix.efficiency.plots`, :mod:`~rsdix.efficiency.report` (tables, the answer, STUDY.md).
"""
