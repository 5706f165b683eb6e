"""``rsdix evaluate MODEL --protocol all`` (the protocol-sensitivity table and figure) and
``rsdix data manifest NAME --protocol P`` (the exact evaluation file list with a SHA-256 per file).

    rsdix evaluate zoo:RemoteCLIP-ViT-B-32 --protocol all --out figures/protocols/remoteclip
    rsdix data manifest whu_rs19 --protocol all --out rsdix/evaluation/protocols/manifests
"""
from __future__ import annotations

from pathlib import Path

from rsdix import config
from rsdix.errors import RsdixError
from rsdix.paths import runs_dir


def cmd_evaluate_all_protocols(args, cfg, label: str, bundle, trained_on) -> int:
    """Every protocol on one model: results.csv (all rows), sensitivity.csv/.md/.png in ``--out``."""
    from rsdix.evaluation.sensitivity import evaluate_protocols, sensitivity_table, write_sensitivity  # stage import

    details: dict = {}
    rows = evaluate_protocols(bundle, tasks=args.tasks or None, config=cfg, model_name=label, data_root=args.data_root,
                              trained_on=trained_on, seed=args.seed, details=details)
    if not len(rows):
        raise RsdixError("evaluate --protocol all: no rows (no zero-shot or retrieval set present; see --tasks)")
    out = Path(args.out) if args.out else runs_dir() / "evaluate" / label / "protocols"
    written = write_sensitivity(rows, out)
    table = sensitivity_table(rows)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    for item in {(s["dataset"], s["reason"]) for s in details.get("skipped", [])}:
        print(f"skipped {item[0]}: {item[1]}")
    stats = details["cache_stats"]
    print(f"{stats.images_encoded} images encoded, {stats.hits} feature reads from the cache")
    print("written " + ", ".join(str(p) for p in written.values()))
    return 0


def cmd_manifest(args) -> int:
    """``rsdix data manifest NAME --protocol P|all``: write the file list(s) with SHA-256 per file."""
    from rsdix.evaluation.split_manifest import MANIFEST_DIR, write_dataset_manifests  # stage import when run

    if not args.name:
        raise RsdixError("data manifest: give a dataset name (rsdix data list shows them)")
    cfg = config.load("evaluate", args.config)
    out = Path(args.out) if args.out else MANIFEST_DIR
    done = write_dataset_manifests(args.name, [args.protocol or "rsdix"], out, cfg, args.root)
    for row in done:
        print(f"{args.name} under {row['protocol']}: {row['files']} files, manifest {row['manifest'][:16]}... "
              f"in {row['path']}")
    return 0
