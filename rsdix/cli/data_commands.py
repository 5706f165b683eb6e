"""``rsdix data list`` and ``rsdix data plan``: what the data root holds, and what a profile needs."""
from __future__ import annotations

import os

from rsdix import config
from rsdix.data import registry
from rsdix.paths import data_root


def root_line(root_arg) -> str:
    """The data root a command reads, and where that choice came from."""
    root = data_root(root_arg, required=False)
    origin = "--root" if root_arg else ("$RSDIX_DATA_ROOT" if os.environ.get("RSDIX_DATA_ROOT") else "the default")
    return f"data root: {root} (from {origin}; {'present' if root.is_dir() else 'MISSING'})"


def cmd_list(args) -> int:
    print(root_line(args.root))
    root = data_root(args.root, required=False)
    present = set(registry.available(root)) if root.is_dir() else set()
    for info in registry.REGISTRY.values():
        mark = "present" if info.name in present else "-"
        print(f"{info.name:20s} {info.title:12s} {info.kind:15s} {str(info.images or '?'):>7s} images  {mark}")
    return 0


def cmd_plan(args) -> int:
    """Every dataset the profile reads, present or missing, with its layout and how to get it; the
    Sentinel-2 scenes of notebook 02. Exit 1 when something is missing."""
    from rsdix.reporting.dry_run import needed_datasets  # stage import when the command runs (torch)

    profile = args.profile
    root = data_root(args.root, required=False)
    print(f"profile {profile}; " + root_line(args.root))
    present = set(registry.available(root)) if root.is_dir() else set()
    missing = 0
    for name in (n for n in needed_datasets(profile) if n in registry.REGISTRY):
        if name in present:
            print(f"  present  {name:20s} {registry.layout(name, root)}")
        else:
            missing += 1
            print(f"  MISSING  {name:20s} {registry.how_to_get(name, root)}")
    for scene in config.load("s2lcd", profile).scenes:
        path = scene["path"] if isinstance(scene, dict) else scene.path
        ok = (root / path).exists()
        missing += not ok
        print(f"  {'present' if ok else 'MISSING':8s} {'s2 scene':20s} {root / path}/ (notebook 02: "
              + ("read" if ok else "skipped; any Sentinel-2 L1C/L2A band folder or SAFE product, `s2lcd.scenes`") + ")")
    print(f"{missing} missing" + ("; `make smoke` runs without any data (a synthetic sample)" if missing else ""))
    return 1 if missing else 0
