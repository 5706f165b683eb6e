"""The ``rsdix`` command line: one entry point for every stage.

    rsdix data list | check NAME | download NAME     the dataset registry
    rsdix data shards NAME --out DIR                   a caption dataset as webdataset shards
    rsdix data manifest NAME --protocol P              the exact evaluation file list, a SHA-256 per file
    rsdix data leakage A [B ...] --out DIR             duplicate images within and across datasets
    rsdix train --config cpu loss.method=infonce      train a CLIP model (accelerate launch -m rsdix train ...)
    rsdix evaluate MODEL --tasks zero-shot retrieval  evaluate a saved or published model
    rsdix evaluate MODEL --protocol all               the same model under every evaluator's protocol
    rsdix zoo list | get NAME | evaluate              every public remote-sensing CLIP checkpoint
    rsdix export MODEL --format hf|open_clip --out D  a transformers CLIPModel / open_clip hub folder
    rsdix caption --encoder MODEL --dataset ucm_captions   train a captioner, caption the test split
    rsdix reproduce --profile cpu                     run the notebooks through papermill
    rsdix reproduce --status --profile cpu            are figures/cpu what the code and data give?
    rsdix study efficiency [--profile cpu]            the data-efficiency study (docs/study.md)
    rsdix study methods | caption-metrics             notebook 03's / 06's study through papermill
    rsdix bench [--quick]                             speed benchmarks
    rsdix box-captions coco instances.json out.json   captions from boxes / masks (RemoteCLIP B2C, M2B)
    rsdix wordnet install                             the offline WordNet for the metric study
    rsdix results check PATH | repair PATH            a results table's damaged lines; keep the valid rows

Every rsdix error prints one line, ``error: <file or key>: <problem>``, and exits with code 2;
``--debug`` shows the traceback instead. Progress and notes are log lines on stderr
(``rsdix --quiet ...``: warnings only, ``rsdix --verbose ...``: debug too). Each command
imports its stage only when it runs, so ``rsdix --help`` answers at once (the stages import
torch, open_clip and transformers).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import yaml

from rsdix import config, log
from rsdix.cli import caption_commands, data_commands, install_commands, protocol_commands, zoo_commands
from rsdix.cli.specs import default_evaluate_dir, model_from_spec
from rsdix.errors import ConfigError, DataError, RsdixError
from rsdix.paths import PROFILES, RunDirs, run_name, runs_dir
from rsdix.utils import atomic_write_text


# ---------------------------------------------------------------- the commands

def cmd_data(args) -> int:
    from rsdix.data import registry  # stage import when the command runs (keeps --help fast)
    from rsdix.data.check import check_dataset  # stage import when the command runs

    names, args.name = list(args.name or []), (args.name or [None])[0]
    if args.action == "leakage":
        return cmd_leakage(args, names)
    if args.action == "manifest":
        return protocol_commands.cmd_manifest(args)
    if len(names) > 1:
        raise RsdixError(f"data {args.action}: one dataset name, got {names}")
    if args.action == "list":
        return data_commands.cmd_list(args)
    if args.action == "plan":
        return data_commands.cmd_plan(args)
    if not args.name:
        raise RsdixError(f"data {args.action}: give a dataset name (rsdix data list shows them)")
    if args.action == "check":
        report = check_dataset(args.name, args.root, verify_images=not args.quick)
        print(report)
        return 0 if report.ok else 1
    if args.action == "shards":
        from rsdix.data.shards import write_dataset_shards  # stage import when the command runs

        if not args.out:
            raise RsdixError("data shards: give --out FOLDER for the .tar shards")
        paths = write_dataset_shards(args.name, args.out, split=None if args.split == "all" else args.split,
                                     shard_size=args.shard_size, image_format=args.format, root=args.root)
        print(f"{args.name}: {len(paths)} shards in {args.out} (sizes.json beside them); "
              f"train on them with data.datasets=[shards:{args.out}]")
        return 0
    path = registry.download(args.name, args.root)
    print(f"{args.name}: laid out at {path}")
    return 0


def cmd_leakage(args, names: list[str]) -> int:
    """``rsdix data leakage A [B ...]``: duplicate groups, exclusion list, counts per pair."""
    from rsdix.evaluation.leakage_audit import leakage_audit  # stage import when the command runs

    bundle = model_from_spec(args.model, args.device)[1] if args.model else None
    audit = leakage_audit(names, args.root, bundle=bundle, threshold=args.threshold, max_bits=args.max_bits,
                          skip_missing=args.skip_missing)
    print(audit.summary())
    out = Path(args.out) if args.out else runs_dir() / "leakage"
    written = audit.write(out)
    print(f"written {written['groups']}, {written['counts']} and the exclusion list {written['exclude']} "
          f"(train on without them: data.exclude=[{written['exclude']}])")
    return 0


def cmd_train(args) -> int:
    from accelerate import PartialState  # heavy: accelerate/torch load only when training runs

    from rsdix.models import save_model  # stage import when the command runs
    from rsdix.training.clip import method_label, train_clip  # stage import when the command runs

    extra = {"data": {"data_root": args.data_root}} if args.data_root else {}
    cfg = config.load("train", args.config, overrides=args.overrides, **extra)
    run_dir, model_dir = default_run(args.config, cfg)
    run_dir = Path(args.run_dir) if args.run_dir else run_dir
    args.save_model = args.save_model or (None if args.run_dir else model_dir)
    if args.resume and not (run_dir / "checkpoint.pt").exists():
        raise DataError(run_dir, "--resume: no checkpoint.pt in this run folder (a mistyped --run-dir? "
                                 "leave out --resume to start a new run)")
    result = train_clip(cfg, run_dir=run_dir, resume=args.resume)
    main_process = PartialState().is_main_process
    if args.save_model and main_process:
        save_model(result.bundle, args.save_model, extra={"method": method_label(cfg), "seed": cfg.loop.seed,
                                                          "steps": result.step,
                                                          "fraction": cfg.data.fraction,
                                                          "datasets": list(cfg.data.datasets)})
    last = result.history[-1] if result.history else {}
    if main_process:
        print(f"done: {result.step} steps in {result.seconds:.0f}s, final loss {last.get('loss', math.nan):.4f}; "
              f"checkpoint {run_dir / 'checkpoint.pt'}")
        if args.save_model:
            print(f"model folder: {args.save_model}  (evaluate it: rsdix evaluate {args.save_model})")
    if args.quick_check and main_process:
        from rsdix.evaluation.quick_check import quick_check  # stage import when the command runs

        if args.device:   # else the check runs where the model trained (the GPU of a GPU run)
            result.bundle.model.to(args.device)
        scores = quick_check(result.bundle, cfg.data.data_root)
        print("quick check: " + ", ".join(f"{k} {v:.2f}" for k, v in scores.items()))
    return 0


def default_run(config_name: str, cfg) -> tuple[Path, Path | None]:
    """Where ``rsdix train`` writes when no ``--run-dir`` is given: for a profile's config
    (``paper``, ``paper_dino`` ...) the run folder and model folder notebook 03 reads
    (``runs/<profile>/train/<method>_s<seed>``, ``runs/<profile>/models/<method>_s<seed>``), so the
    notebooks pick the trained model up; for a YAML path ``runs/train/<method>`` (no model folder)."""
    profile = str(config_name).split("_")[0]
    if profile not in PROFILES or Path(str(config_name)).suffix:
        return runs_dir() / "train" / cfg.loss.method, None
    dirs = RunDirs(profile)
    name = run_name("dino" if cfg.dino.enabled else cfg.loss.method, cfg.loop.seed)
    return dirs.run / "train" / name, dirs.models / name


def cmd_evaluate(args) -> int:
    from rsdix.evaluation.model_specs import training_sets  # stage import when the command runs
    from rsdix.evaluation.suite import evaluate_model  # stage import when the command runs
    from rsdix.evaluation.named_suites import suite_tasks, summary_markdown  # stage import when the command runs
    from rsdix.results import write_table  # stage import when the command runs

    protocol = [f"protocol={args.protocol}"] if args.protocol and args.protocol != "all" else []
    cfg = config.load("evaluate", args.config, overrides=[*args.overrides, *protocol])
    tasks = args.tasks or None
    if args.suite:
        tasks = suite_tasks(args.suite, cfg, [t.partition(":")[0] for t in args.tasks or []])
        if args.suite != ["rsdix"] and not cfg.skip_missing:   # a published suite: run what is present
            cfg = dataclasses.replace(cfg, skip_missing=True)
    label, bundle, model_path = model_from_spec(args.model, args.device, args.label, seed=args.seed)
    out = Path(args.out) if args.out else default_evaluate_dir(args.model, label)
    details: dict = {}
    trained_on = args.trained_on if args.trained_on is not None else training_sets(model_path)
    if args.protocol == "all":
        return protocol_commands.cmd_evaluate_all_protocols(args, cfg, label, bundle, trained_on)
    rows = evaluate_model(bundle, tasks=tasks, seed=args.seed, model_name=label, config=cfg,
                          data_root=args.data_root, write=False, details=details, trained_on=trained_on)
    csv, md = write_table(rows, "results", out)
    atomic_write_text(md, summary_markdown(rows, f"rsdix evaluate {label}"))
    shown = rows[["dataset", "task", "metric", "value"]] if len(rows) else rows
    print(shown.to_string(index=False))
    if details.get("skipped"):
        print(f"skipped (not in the data root): {', '.join(d['dataset'] for d in details['skipped'])}")
    stats = details["cache_stats"]
    print(f"{stats.images_encoded} images encoded, {stats.hits} feature reads from the cache")
    print(f"written {csv} and {md}")
    return 0


def cmd_reproduce(args) -> int:
    if args.status:  # is figures/<profile> what the present code, configs, notebooks and data give?
        from rsdix.reporting.reproduce import status  # stage import when the command runs

        current, text = status(args.profile, args.data_root, args.out_dir)
        print(text)
        return 0 if current else 1
    if args.dry_run:  # offline, stand-ins, capped configs; writes under runs/<profile>-dry/ (docs/paper.md)
        from rsdix.reporting.dry_run import run as dry_run  # stage import when the command runs

        dry_run(args.profile, args.data_root, args.seed, args.force, args.only, args.kernel)
        return 0
    from rsdix.reporting.reproduce import run  # stage import when the command runs

    run(args.profile, args.data_root, args.seed, args.force, args.only, args.out_dir, args.kernel,
        parameters=notebook_parameters(args.parameter))
    return 0


def notebook_parameters(pairs) -> dict:
    """``-p KEY=VALUE`` pairs -> notebook parameters, each value read as YAML (``extra_models=[a, b]``)."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ConfigError(f"-p {pair!r}: expected NAME=VALUE with a notebook parameter's name")
        out[key.strip()] = yaml.safe_load(value) if value.strip() else None
    return out


def cmd_study_notebook(args) -> int:
    """``rsdix study methods|caption-metrics``: the study's notebook (03 or 06) through papermill."""
    from rsdix.reporting.reproduce import run  # stage import when the command runs

    run(args.profile, args.data_root, args.seed, args.force, [args.notebook])
    return 0


def cmd_study_efficiency(args) -> int:
    if args.dry_run:   # the stand-ins' environment must be set before torch / the hub load: a child process
        from rsdix.reporting import dry_run  # stage import when the command runs
        env = dry_run.prepare(args.profile, args.data_root)
        out = args.out_dir or str(dry_run.dry_folder(args.profile) / "study")
        argv = [sys.executable, "-m", "rsdix", "study", "efficiency", "--profile", args.profile, "--out-dir", out,
                "--data-root", env["RSDIX_DATA_ROOT"], *(["--threads", str(args.threads)] if args.threads else []),
                *args.overrides]
        return subprocess.run(argv, env={**os.environ, **env}).returncode
    from rsdix.studies.efficiency import study as efficiency  # stage import when the command runs

    if args.threads:
        efficiency.set_threads(args.threads)
    if args.plan:
        from rsdix.studies.efficiency import budget  # stage import when the command runs
        path = budget.write_plan(efficiency.load_efficiency_config(args.profile, overrides=args.overrides),
                                 args.profile, args.out_dir or efficiency.default_out_dir("cpu"))
        print(f"run arithmetic: {path}")
        return 0
    if args.report_only:
        efficiency.write_report(args.out_dir or efficiency.default_out_dir(args.profile))
    else:
        efficiency.study(args.profile, args.out_dir, args.data_root, args.overrides, args.max_minutes,
                         curves=not args.no_curves, report=not args.no_report)
    print(f"study results: {Path(args.out_dir or efficiency.default_out_dir(args.profile)) / 'STUDY.md'}")
    return 0


def cmd_bench(args) -> int:
    from rsdix.benchmarks import run_all  # stage import when the command runs

    return run_all(quick=args.quick, only=args.only, out=args.out)


def cmd_box_captions(args) -> int:
    from rsdix.data.box_captions import convert  # stage import when the command runs

    classes = {}
    for item in args.classes:
        index, sep, name = item.partition("=")
        if not sep or not index.strip().isdigit() or not name:
            raise RsdixError(f"--classes {item!r}: expected index=name, e.g. 1=building")
        classes[int(index)] = name.replace("_", " ")
    path = convert(args.kind, args.source, args.out, args.images, classes, args.n_captions, args.seed,
                   args.split, args.min_area)
    print(f"wrote {path}")
    return 0


def cmd_results(args) -> int:
    """``rsdix results check|repair PATH``: a results table's damaged lines (docs/checks.md)."""
    from rsdix.results import check_table, repair_table  # stage import when the command runs

    if not Path(args.path).is_file():
        raise DataError(args.path, "results table not found")
    if args.action == "check":
        report = check_table(args.path)
        print(report.summary())
        return 0 if report.ok else 1
    report, aside = repair_table(args.path)
    print(report.summary() if aside is None else f"{args.path}: kept {len(report.rows)} valid row(s); moved "
          f"{len(report.problems)} damaged line(s) to {aside}")
    return 0


# ---------------------------------------------------------------- the parser

def _overrides(p: argparse.ArgumentParser, example: str) -> None:
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help=f"config values to change, section.key=value (parsed as YAML), e.g. {example}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rsdix", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="rsdix COMMAND --help shows each command's options.")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    noise = parser.add_mutually_exclusive_group()
    noise.add_argument("--quiet", "-q", action="store_true", help="log warnings and errors only")
    noise.add_argument("--verbose", "-v", action="store_true", help="log debug messages too")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("data", help="dataset registry: list, check a local copy, download")
    p.add_argument("action", choices=["list", "plan", "check", "download", "shards", "leakage", "manifest"],
                   help="what to do (plan: what --profile reads, present or missing, and how to get it)")
    p.add_argument("name", nargs="*", help="registry name (rsdix data list); leakage: one or more")
    p.add_argument("--root", default=None, help="data root (default: $RSDIX_DATA_ROOT or ../shared/data)")
    p.add_argument("--profile", default="cpu", choices=PROFILES, help="plan: the profile whose datasets are listed")
    p.add_argument("--quick", action="store_true", help="check: files exist, without decoding images")
    p.add_argument("--out", default=None, help="shards: folder for the webdataset .tar shards")
    p.add_argument("--split", default="train", help="shards: split written (train/val/test, or all)")
    p.add_argument("--shard-size", type=int, default=1000, help="shards: samples per shard")
    p.add_argument("--format", choices=["jpg", "png"], default="jpg", help="shards: image format (png: lossless)")
    p.add_argument("--model", default=None,
                   help="leakage: model whose image features the cosine part compares (default: rsdix-tiny, "
                        "fixed random weights)")
    p.add_argument("--device", default=None, help="leakage: device of --model (default: cuda when present)")
    p.add_argument("--threshold", type=float, default=0.999,
                   help="leakage: mean-centred cosine at or above which two images are near-duplicates")
    p.add_argument("--max-bits", type=int, default=4, help="leakage: pHash Hamming distance (of 64 bits) for near-duplicates")
    p.add_argument("--skip-missing", action="store_true", help="leakage: leave out datasets absent from the data root")
    p.add_argument("--protocol", default=None, choices=[*zoo_commands.protocol_names(), "all"],
                   help="manifest: the protocol whose split rule picks the files (default rsdix; all: every one)")
    p.add_argument("--config", default="cpu", help="manifest: evaluation config sizing the sets (split_from, max_images)")
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("train", help="train a CLIP model (InfoNCE, RSDiX, S-BERT teacher, SigLIP, DINO)")
    p.add_argument("--config", default="cpu",
                   help=f"config name ({', '.join(config.config_names('train'))}) or a YAML path")
    p.add_argument("--run-dir", default=None,
                   help="checkpoint and train_log.csv (default for a profile's config: runs/<profile>/train/"
                        "<method>_s<seed>, where notebook 03 looks; for a YAML path: runs/train/<method>)")
    p.add_argument("--resume", action="store_true", help="continue from <run-dir>/checkpoint.pt")
    p.add_argument("--save-model", default=None, metavar="DIR",
                   help="also save the trained model (open_clip folder; default for a profile's config without "
                        "--run-dir: runs/<profile>/models/<method>_s<seed>, where notebooks 04 and 05 look)")
    p.add_argument("--data-root", default=None, help="data root (default: $RSDIX_DATA_ROOT or ../shared/data)")
    p.add_argument("--quick-check", action="store_true",
                   help="after training, UCM test retrieval mR and WHU-RS19 zero-shot top-1")
    p.add_argument("--device", default=None,
                   help="device of the quick check (default: where the model trained; training itself "
                        "uses accelerate's device: cuda when present, loop.cpu=true forces the CPU)")
    _overrides(p, "loss.method=infonce loop.steps=100")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="zero-shot, retrieval, linear probe, k-NN, few-shot, counting of a model")
    p.add_argument("model", help="a saved model folder, a preset, or [label=]open_clip_name@pretrained (an existing "
                                 "path is never split at '=')")
    p.add_argument("--label", default=None, help="name of the model in the results (default: the folder's name, "
                                                 "or the spec's label=)")
    p.add_argument("--config", default="cpu",
                   help=f"evaluation config ({', '.join(config.config_names('evaluate'))}) or a YAML path")
    p.add_argument("--tasks", nargs="*", default=None,
                   help="task or task:dataset (e.g. zero-shot retrieval:UCM); default: every task of the config")
    p.add_argument("--suite", nargs="+", default=None, metavar="SUITE_OR_DATASET",
                   help="rsdix (the config's tasks), remoteclip (the sets RemoteCLIP reports, those present), "
                        "all, or registry dataset names (each with the config's tasks of its kind)")
    p.add_argument("--protocol", default=None, choices=[*zoo_commands.protocol_names(), "all"],
                   help=f"evaluation protocol: {', '.join(zoo_commands.protocol_names())} (default rsdix; test "
                        "images, templates, class names, retrieval convention: rsdix/evaluation/protocols/protocols.yaml)"
                        "; all: every protocol, with the sensitivity table and figure (sensitivity.csv/.md/.png)")
    p.add_argument("--trained-on", nargs="*", default=None, metavar="CAPTION_SET",
                   help="caption sets the model was trained on (default: read from an rsdix model folder); "
                        "zero-shot rows on sets built on their images are marked 'not zero-shot'")
    p.add_argument("--out", default=None, help="folder for results.csv and results.md (default runs/evaluate/<label>)")
    p.add_argument("--data-root", default=None, help="data root (default: $RSDIX_DATA_ROOT or ../shared/data)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampled splits (probe, few-shot)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when present)")
    _overrides(p, "skip_missing=true")
    p.set_defaults(func=cmd_evaluate)

    zoo_commands.add_parsers(sub)

    p = sub.add_parser("caption", help="train a prefix captioner on an encoder and caption a test split")
    p.add_argument("--encoder", required=True, help="encoder: a saved model folder, a preset, or open_clip_name@pretrained")
    p.add_argument("--config", default="cpu",
                   help=f"captioning config ({', '.join(config.config_names('captioning'))}) or a YAML path")
    p.add_argument("--dataset", default=None, help="caption dataset (default: the config's first)")
    p.add_argument("--unfrozen", action="store_true", help="train the encoder too (default: frozen)")
    p.add_argument("--images", default=None,
                   help="caption a folder of your own images with a trained captioner (--captioner) instead of training")
    p.add_argument("--captioner", default=None,
                   help="with --images: a captioner run folder (runs/caption/<dataset>/<run>) or its captioner/")
    p.add_argument("--label", default=None, help="name of the run (default: the encoder's folder name)")
    p.add_argument("--run-dir", default=None,
                   help="where captioners and captions go (default runs/caption; --images: runs/caption/images/<folder>)")
    p.add_argument("--data-root", default=None, help="data root (default: $RSDIX_DATA_ROOT or ../shared/data)")
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument("--device", default=None, help="cpu, cuda ... (default: cuda when present)")
    _overrides(p, "train.loop.steps=200")
    p.set_defaults(func=caption_commands.cmd_caption)

    p = sub.add_parser("reproduce", help="run notebooks 01-06 through papermill; tables, figures, RESULTS.md")
    p.add_argument("--profile", default="cpu", choices=["smoke", "cpu", "paper"], help="settings of every notebook")
    p.add_argument("--data-root", default=None, help="data root (default: $RSDIX_DATA_ROOT or ../shared/data)")
    p.add_argument("--seed", type=int, default=0, help="the notebooks' seed parameter")
    p.add_argument("--force", action="store_true", help="rerun notebooks even when up to date")
    p.add_argument("--only", nargs="*", metavar="NN", help="notebook prefixes to run, e.g. 01 03")
    p.add_argument("--out-dir", default=None, help="tables and figures folder (default figures/<profile>)")
    p.add_argument("--kernel", default=None, help="Jupyter kernel name (default: the notebooks' own)")
    p.add_argument("-p", "--parameter", action="append", metavar="NAME=VALUE",
                   help="a notebook parameter (value read as YAML), e.g. -p 'extra_models=[RemoteCLIP=ViT-B-32@ckpt.pt]'; "
                        "repeatable; part of each notebook's stamp")
    p.add_argument("--dry-run", action="store_true",
                   help="offline with random-weight stand-ins and stand-in data, the configs capped by "
                        "rsdix/configs/dry_run.yaml; writes under runs/<profile>-dry/ (docs/paper.md)")
    p.add_argument("--status", action="store_true",
                   help="run nothing: print 'current' or 'stale' for the profile's figures folder (its MANIFEST.json "
                        "against the present code by folder, notebooks and data; which changed; the commit its "
                        "results come from); exit status 0 when current, 1 when stale")
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("study", help="the studies: efficiency (data efficiency of self-distillation), methods "
                                     "(notebook 03), caption-metrics (notebook 06)")
    studies = p.add_subparsers(dest="study", metavar="STUDY", required=True, help="which study")
    p = studies.add_parser("efficiency", help="does self-distillation need less data? paired seeds, learning curves, "
                                              "STUDY.md (docs/study.md)")
    p.add_argument("--profile", default="cpu",
                   help="rsdix/configs/efficiency/<profile>.yaml (cpu, cpu_pretrained, smoke, smoke_pretrained, paper)")
    p.add_argument("--data-root", default=None, help="the data root (default: $RSDIX_DATA_ROOT or ../shared/data)")
    p.add_argument("--out-dir", default=None, help="results folder (default: figures/study for cpu, runs/<profile>/study else)")
    p.add_argument("--max-minutes", type=float, default=None, help="start no run after this many minutes (resume later)")
    p.add_argument("--no-curves", action="store_true", help="skip the learning curves")
    p.add_argument("--report-only", action="store_true", help="only rebuild the tables, figures and STUDY.md")
    p.add_argument("--no-report", action="store_true", help="train only; leave STUDY.md to --report-only")
    p.add_argument("--plan", action="store_true",
                   help="write the run arithmetic (steps, images, device hours) to <out-dir>/<profile>_plan.md; train nothing")
    p.add_argument("--dry-run", action="store_true",
                   help="offline on the paper dry run's stand-ins and caps (rsdix/configs/dry_run.yaml), into "
                        "runs/<profile>-dry/study")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads of this process (several workers on a shared CPU: 1 each)")
    _overrides(p, "seeds=[0,1,2]")
    p.set_defaults(func=cmd_study_efficiency)
    for name, notebook, what in (("methods", "03", "InfoNCE vs RSDiX-CLIP, S-BERT teacher, SigLIP, DINO (notebook 03)"),
                                 ("caption-metrics", "06", "n-gram vs semantic caption metrics (notebook 06)")):
        p = studies.add_parser(name, help=f"{what}, run through papermill like `rsdix reproduce --only {notebook}`")
        p.add_argument("--profile", default="cpu", choices=["smoke", "cpu", "paper"], help="settings of the notebook")
        p.add_argument("--data-root", default=None, help="data root (default: $RSDIX_DATA_ROOT or ../shared/data)")
        p.add_argument("--seed", type=int, default=0, help="the notebook's seed parameter")
        p.add_argument("--force", action="store_true", help="rerun even when up to date")
        p.set_defaults(func=cmd_study_notebook, notebook=notebook)

    p = sub.add_parser("bench", help="speed benchmarks, written as a table (CSV + markdown)")
    p.add_argument("--quick", action="store_true",
                   help="smaller sizes (about a minute), judged against no goal; written to runs/bench-quick")
    p.add_argument("--only", nargs="*", metavar="NAME", help="benchmark modules to run (the others' rows are kept)")
    p.add_argument("--out", default=None,
                   help="output prefix (writes PREFIX.csv and PREFIX.md; default figures/bench, --quick runs/bench-quick)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("box-captions", help="captions from boxes or masks (RemoteCLIP B2C / M2B) as Karpathy JSON")
    p.add_argument("kind", choices=["coco", "dota", "voc", "dior", "masks"], help="annotation format")
    p.add_argument("source", help="COCO JSON, or a folder of DOTA txt / VOC xml / mask PNG files")
    p.add_argument("out", help="output Karpathy JSON")
    p.add_argument("--images", default=None, help="image folder (DOTA: to read image sizes)")
    p.add_argument("--classes", nargs="*", default=[], metavar="INDEX=NAME", help="masks: class of each mask value")
    p.add_argument("--n-captions", type=int, default=5, help="captions per image")
    p.add_argument("--seed", type=int, default=0, help="seed of the caption wording")
    p.add_argument("--split", default="train", help="split written for every image")
    p.add_argument("--min-area", type=int, default=16, help="masks: smallest region (pixels) that becomes a box")
    p.set_defaults(func=cmd_box_captions)

    p = sub.add_parser("results", help="check a results table for damaged lines, or repair it (keep the valid rows)")
    p.add_argument("action", choices=["check", "repair"],
                   help="check: list damaged lines (exit 1 if any); repair: keep the valid rows, move the rest aside")
    p.add_argument("path", help="the results table (CSV), e.g. runs/cpu/results.csv")
    p.set_defaults(func=cmd_results)

    p = sub.add_parser("spice", help="SPICE's Stanford CoreNLP jars (captioning's SPICE column; needs internet once)")
    p.add_argument("action", choices=["install", "check"], help="install: download them (~400 MB) unless present")
    p.set_defaults(func=install_commands.cmd_spice)

    p = sub.add_parser("wordnet", help="the offline WordNet (nltk format) the metric study needs")
    p.add_argument("action", choices=["install", "check"], help="install: build it from /usr/share/wordnet")
    p.add_argument("--dest", default=None, help="nltk_data folder (default: <cache>/nltk_data)")
    p.add_argument("--source", default=None, help="WordNet dict folder (default /usr/share/wordnet)")
    p.add_argument("--force", action="store_true", help="rebuild even when complete")
    p.set_defaults(func=install_commands.cmd_wordnet)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line, with ``KEY=VALUE`` overrides accepted anywhere after the command (``rsdix train
    --config smoke loop.steps=2 --run-dir runs/y loss.method=infonce``): argparse takes the first block,
    the later ones join it."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    stray = [a for a in extra if "=" in a and not a.startswith("-")]
    if extra and (len(stray) != len(extra) or not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if stray:
        args.overrides = [*args.overrides, *stray]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    level = "WARNING" if args.quiet else "DEBUG" if args.verbose else "INFO"
    with log.configured_for(level):   # rsdix's log lines on stderr; the kernels it starts inherit the level
        return _run(args)


def _run(args) -> int:
    try:
        return args.func(args)
    except RsdixError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file that cannot be read or written: name it, no traceback
        if args.debug or exc.filename is None:
            raise
        print(f"error: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
