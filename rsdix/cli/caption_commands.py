"""``rsdix caption``: train a prefix captioner on an encoder, or caption a folder of one's own images."""
from __future__ import annotations

from pathlib import Path

from rsdix import config
from rsdix.cli.specs import model_from_spec
from rsdix.errors import ConfigError, DataError
from rsdix.paths import runs_dir
from rsdix.utils import atomic_write_text, pick_device


def cmd_caption(args) -> int:
    from rsdix.captioning.experiment import CaptionRun, run_captioning  # stage import when the command runs
    from rsdix.results import append_results, read_results  # stage import when the command runs

    exp = config.load("captioning", args.config, overrides=args.overrides)
    if args.images:
        return caption_folder(args, exp)
    dataset = args.dataset or exp.datasets[0]
    name = args.label or Path(args.encoder.split("@")[0]).name
    encoder, _, pretrained = args.encoder.partition("@")
    run = CaptionRun(name, encoder, pretrained or None, frozen=not args.unfrozen)
    run_root = Path(args.run_dir) if args.run_dir else runs_dir() / "caption"
    out = run_captioning(run, exp, dataset, root=args.data_root, run_root=run_root, seed=args.seed,
                         device=args.device)
    table = run_root / "results.csv"
    append_results(out["results"], table)
    frame = read_results(table)
    frame = frame[(frame["model"] == out["results"][0].model) & (frame["dataset"] == out["results"][0].dataset)]
    print(frame[["dataset", "task", "metric", "value"]].to_string(index=False))
    print(f"captions: {run_root / dataset / run.name / 'test_captions.csv'}; results: {table}")
    return 0


def caption_folder(args, exp) -> int:
    """``rsdix caption --images DIR --captioner RUN --encoder ENC``: a trained captioner's captions for
    every image of a folder of the user's own, written to ``captions.csv`` (filename, caption)."""
    import pandas as pd  # stage import when the command runs

    from rsdix.captioning.caption_data import image_embeddings  # stage import when the command runs
    from rsdix.captioning.decoding import generate_captions  # stage import when the command runs
    from rsdix.captioning.training import load_captioner  # stage import when the command runs
    from rsdix.data.captions import CaptionRecord  # stage import when the command runs
    from rsdix.data.images import IMAGE_EXTS  # stage import when the command runs

    folder = Path(args.images)
    if not folder.is_dir():
        raise DataError(folder, "--images: folder not found")
    files = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise DataError(folder, f"--images: no image files ({', '.join(IMAGE_EXTS)})")
    if not args.captioner:
        raise ConfigError("--images needs --captioner RUN: a captioner run folder (rsdix caption prints it) "
                          "or its captioner/ folder")
    run = Path(args.captioner)
    cap_dir = run / "captioner" if (run / "captioner" / "captioner.json").is_file() else run
    device = pick_device(args.device)
    captioner = load_captioner(cap_dir, device)
    trained_encoder = cap_dir.parent / "encoder"   # an unfrozen run saved its trained encoder beside it
    spec = str(trained_encoder) if (trained_encoder / "open_clip_config.json").is_file() else args.encoder
    bundle = model_from_spec(spec, args.device)[1]
    if bundle.embed_dim != captioner.embed_dim:
        raise ConfigError(f"--encoder {spec}: embedding width {bundle.embed_dim}, the captioner in {cap_dir} "
                          f"expects {captioner.embed_dim}: give the encoder it was trained with")
    decode = exp.train_config(True).decode
    embeds = image_embeddings(bundle, [CaptionRecord(f, "images", []) for f in files], folder, decode.batch_size,
                              desc="image embeddings")
    captions = generate_captions(captioner, embeds, decode.method, decode.beam_size, decode.top_p,
                                 decode.temperature, decode.max_len, decode.batch_size, args.seed)
    out = Path(args.run_dir) if args.run_dir else runs_dir() / "caption" / "images" / folder.resolve().name
    table = pd.DataFrame({"filename": files, "caption": captions})
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "captions.csv", table.to_csv(index=False))
    print(table.to_string(index=False))
    print(f"captions: {out / 'captions.csv'}")
    return 0
