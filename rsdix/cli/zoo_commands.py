"""``rsdix zoo`` (the model zoo: list, get, check, standin, evaluate) and ``rsdix export`` (a model
as a transformers CLIPModel folder or an open_clip hub folder, with a model card).

    rsdix zoo list                                   one line per checkpoint: arch, format, size, where
    rsdix zoo get RemoteCLIP-ViT-B-32                download to <weights root>/checkpoints/ (offline: what to do)
    rsdix zoo evaluate --config cpu --out DIR        every checkpoint present, under every protocol
    rsdix export ViT-B-32-quickgelu@w.pt --format hf --out DIR
"""
from __future__ import annotations

from pathlib import Path

import yaml

from rsdix import config
from rsdix.errors import RsdixError
from rsdix.paths import runs_dir
from rsdix.utils import pick_device


def cmd_zoo(args) -> int:
    from rsdix.models import zoo  # stage import when the command runs (keeps --help fast)

    if args.action == "list":
        entries = zoo.zoo()
        for entry in entries.values():
            print(zoo.list_line(entry, args.root))
        present = sum(zoo.is_present(e, args.root) for e in entries.values())
        print(f"{len(entries)} checkpoints ({len({e.family for e in entries.values()})} families), {present} present "
              f"in {zoo.checkpoints_dir(args.root)}; rsdix zoo get NAME downloads one")
        return 0
    if args.action == "evaluate":
        return zoo_evaluate(args)
    if not args.name:
        raise RsdixError(f"zoo {args.action}: give a checkpoint name (rsdix zoo list shows them)")
    if args.action == "get":
        path = zoo.fetch(args.name, args.root, force=args.force)
        print(f"{args.name}: {path}")
    elif args.action == "check":
        problem = zoo.check_zoo_file(args.name, zoo.local_path(args.name, args.root))
        print(f"{args.name}: " + (problem or f"keys and shapes fit {zoo.get_entry(args.name).arch}"))
        return 1 if problem else 0
    elif args.action == "standin":
        from rsdix.models.zoo_standins import write_standin  # stage import when the command runs

        path = write_standin(args.name, args.root or ".", seed=args.seed)
        print(f"{args.name}: random-weight stand-in in its published format at {path}")
    else:
        entry = zoo.get_entry(args.name)
        for key, value in vars(entry).items():
            print(f"{key:11s} {value}")
    return 0


def zoo_evaluate(args) -> int:
    """Every zoo checkpoint present (or those named) under every protocol; the sensitivity table
    beside the published numbers, written to ``--out``."""
    import pandas as pd  # heavy: only when the command runs

    from rsdix.evaluation.sensitivity import evaluate_protocols, write_sensitivity  # stage import when run
    from rsdix.models import zoo  # stage import when the command runs

    cfg = config.load("evaluate", args.config, overrides=args.overrides)
    names = args.names or [n for n, e in zoo.zoo().items() if e.loadable and zoo.is_present(e, args.root)]
    if not names:
        print(f"no zoo checkpoint present in {zoo.checkpoints_dir(args.root)}: rsdix zoo get NAME first")
        return 1
    frames, published = [], pd.DataFrame(zoo.published_rows(names))
    for name in names:
        bundle = zoo.load_zoo_model(name, args.root, device=pick_device(args.device))
        frames.append(evaluate_protocols(bundle, args.protocols, config=cfg, model_name=name,
                                         data_root=args.data_root, trained_on=zoo.get_entry(name).trained_on))
    rows = pd.concat(frames, ignore_index=True)
    out = Path(args.out) if args.out else runs_dir() / "zoo"
    written = write_sensitivity(rows, out, published)
    print(f"{len(names)} checkpoint(s): {', '.join(names)}; written " + ", ".join(str(p) for p in written.values()))
    return 0


def cmd_export(args) -> int:
    from rsdix.evaluation.model_specs import parse_model_spec  # stage import when the command runs
    from rsdix.models import load_model  # stage import when the command runs
    from rsdix.models.export import export_model, read_rows  # stage import when the command runs
    from rsdix.models.zoo import get_entry  # stage import when the command runs

    label, name, pretrained = parse_model_spec(args.model)
    if Path(name).is_dir() and "=" not in args.model:
        label = Path(name).name
    bundle = load_model(name, pretrained=pretrained)
    about = {}
    if name.startswith("zoo:"):
        entry = get_entry(name)
        about = {"source": f"{entry.source} ({entry.where})", "trained_on": list(entry.trained_on),
                 "licence": entry.licence, "notes": entry.notes}
    rows = read_rows(args.results, model=label) if args.results else None
    folder = export_model(bundle, args.out, args.format, label=label, rows=rows, about=about)
    loader = ("transformers.CLIPModel.from_pretrained" if args.format == "hf"
              else "open_clip.create_model_and_transforms('local-dir:...')")
    print(f"{label}: {args.format} folder {folder} (README.md with {0 if rows is None else len(rows)} evaluated "
          f"row(s)); load it with {loader}")
    return 0


def add_parsers(sub) -> None:
    """The ``zoo`` and ``export`` sub-commands."""
    p = sub.add_parser("zoo", help="the model zoo: every public remote-sensing CLIP (list, get, check, standin, "
                                   "evaluate, show)")
    p.add_argument("action", choices=["list", "get", "show", "check", "standin", "evaluate"],
                   help="list: one line each; get: download (offline: where to put it); show: one entry; check: "
                        "a local file's keys and shapes; standin: random weights in the entry's format; evaluate: "
                        "every checkpoint present under every protocol")
    p.add_argument("name", nargs="?", default=None, help="checkpoint name (rsdix zoo list)")
    p.add_argument("--root", default=None, help="weights root; files go to ROOT/checkpoints/ "
                                                "(default: $RSDIX_WEIGHTS_ROOT or the repository root)")
    p.add_argument("--force", action="store_true", help="get: download again even when present")
    p.add_argument("--seed", type=int, default=0, help="standin: seed of the random weights")
    p.add_argument("--names", nargs="*", default=None, help="evaluate: these checkpoints (default: all present)")
    p.add_argument("--protocols", nargs="*", default=None, help="evaluate: these protocols (default: all)")
    p.add_argument("--config", default="cpu",
                   help=f"evaluate: evaluation config ({', '.join(config.config_names('evaluate'))}) or a YAML path")
    p.add_argument("--out", default=None, help="evaluate: folder for results.csv, sensitivity.csv/.md/.png "
                                               "(default runs/zoo)")
    p.add_argument("--data-root", default=None, help="data root (default: $RSDIX_DATA_ROOT or ../shared/data)")
    p.add_argument("--device", default=None, help="cpu, cuda ... (default: cuda when present)")
    p.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE",
                   help="evaluate: evaluation config values, e.g. --set skip_missing=true max_images=50")
    p.set_defaults(func=cmd_zoo)

    p = sub.add_parser("export", help="a model as a transformers CLIPModel folder or an open_clip hub folder, "
                                      "with a model card")
    p.add_argument("model", help="a saved model folder, zoo:NAME, or [label=]open_clip_name@weights "
                                 "(e.g. ViT-B-32-quickgelu@checkpoints/RemoteCLIP-ViT-B-32.pt)")
    p.add_argument("--format", required=True, choices=["hf", "open_clip"],
                   help="hf: config.json, model.safetensors, image processor, tokenizer (CLIPModel.from_pretrained); "
                        "open_clip: open_clip_config.json + open_clip_model.safetensors (local-dir: / hf-hub:)")
    p.add_argument("--out", required=True, help="the folder to write")
    p.add_argument("--results", nargs="*", default=None, metavar="CSV",
                   help="results.csv of rsdix evaluate: the model card's evaluated rows")
    p.set_defaults(func=cmd_export)


def protocol_names() -> list[str]:
    """The protocols of protocols.yaml, read without importing the evaluation stage (fast --help)."""
    path = Path(__file__).resolve().parents[1] / "evaluation" / "protocols" / "protocols.yaml"
    return list(yaml.safe_load(path.read_text(encoding="utf-8"))["protocols"])
