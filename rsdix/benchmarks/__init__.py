"""Speed and memory benchmarks (``make bench``). Each module here has ``run(quick) -> list[dict]``;
rows are ``{"benchmark", "metric", "value", "unit", "goal", "ok", ...}``. Targets are measured
as ratios within one run, never as timed tests."""


def bench_model(quick: bool, quick_batch: int, full_batch: int = 64):
    """The benchmarks' model and batch size, seeded: ``rsdix-tiny`` when ``quick``, else
    ``rsdix-cnn`` with its pretrained text trunk locked (as notebook 03 trains it)."""
    import torch

    from rsdix.models import load_model, lock_text_trunk

    torch.manual_seed(0)
    if quick:
        return load_model("rsdix-tiny"), quick_batch
    bundle = load_model("rsdix-cnn")
    lock_text_trunk(bundle.model)
    return bundle, full_batch
