"""Speed and memory benchmarks (``make bench``). Each module here has ``run(quick) -> list[dict]``;
rows are ``{"benchmark", "metric", "value", "unit", "goal", "ok", ...}``. Targets are measured
as ratios within one run, never as timed tests."""
