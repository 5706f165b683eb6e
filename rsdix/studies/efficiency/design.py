"""What the data-efficiency study trains (``rsdix/configs/efficiency/<profile>.yaml``): the regime (a model
trained from scratch, or fine-tuned from a pretrained teacher), the arms and their comparisons, the
grid, the seeds, the training length per data share (typed, or read off the learning curves), the
primary endpoint and comparison family declared before any run, and the checks."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from rsdix import config
from rsdix.config import option
from rsdix.errors import ConfigError

# arm name -> (training method, DINO on); the arm name is also the palette key of its colour
ARM_METHODS = {
    "infonce": ("infonce", False),
    "rsdix": ("rsdix", False),
    "siglip": ("siglip", False),
    "rsdix-siglip": ("rsdix-siglip", False),
    "rsdix-sbert": ("rsdix-sbert", False),
    "dino": ("infonce", True),      # InfoNCE + DINO (RS-M-CLIP)
}
# the paired comparisons of the scratch study: (treatment arm, control arm)
COMPARISONS = [("rsdix", "infonce"), ("rsdix-siglip", "siglip"), ("rsdix-sbert", "infonce"),
               ("dino", "infonce")]
REGIMES = ("scratch", "pretrained")


@dataclass
class ArmSpec:
    """An arm beyond the built-in ones: a method, loss overrides (e.g. ``recipe: original``), DINO, and
    the arm whose learning rate it takes (``lr_from``; default: its own from the lr grid, else the base)."""
    method: str = "rsdix"
    loss: dict = field(default_factory=dict)
    dino: bool = False
    lr_from: str | None = None
    title: str | None = None          # its name in STUDY.md (default: the arm name)


@dataclass
class PrimaryConfig:
    """The primary endpoint and its comparison family, declared before the runs: A - B in ``metric`` at
    each of ``shares`` and the interaction (A - B at ``interaction[0]``) - (A - B at ``interaction[1]``);
    Holm's correction over these; ``margin``: the smallest difference that matters (metric units), for
    the non-superiority and equivalence (TOST) statements."""
    metric: str = "UCM test mR"
    a: str = "rsdix"
    b: str = "infonce"
    shares: list = field(default_factory=lambda: [0.1, 0.3, 1.0])
    interaction: list = field(default_factory=lambda: [0.1, 1.0])
    margin: float = option(1.0, min=0, min_exclusive=True)
    alpha: float = option(0.05, min=0, max=0.5, min_exclusive=True)


@dataclass
class RetrievalSpec:
    """One retrieval evaluation: a caption dataset's split, all of it or some classes' images."""
    dataset: str = "ucm_captions"
    split: str = "test"
    classes: str = "all"              # all | target | source (the class split of `pretrain`)
    title: str = "UCM"                # the dataset column of the runs table


@dataclass
class PretrainConfig:
    """Stage 1 of the pretrained regime: a CLIP trained with InfoNCE on a *source* pool of ``dataset``'s
    training images; stage 2 fine-tunes on the rest (the *target* pool). ``split: images``: a seeded
    ``source_share`` of every class's training images (classes from ``labels``); ``split: classes``: the
    training images of ``source_classes``. ``enabled: false`` with ``train.pretrained`` set: the model
    comes pretrained (the paper profile)."""
    enabled: bool = False
    dataset: str = "ucm_captions"
    labels: str = "labels.csv"         # filename,label beside the caption file
    split: Literal["classes", "images"] = "images"
    source_share: float = option(0.5, min=0, max=1, min_exclusive=True)   # split images: per class
    split_seed: int = 0
    source_classes: list = field(default_factory=list)                   # split classes
    steps: int = option(1500, min=1)
    curve_every: int = option(100, min=1)
    lr: float = option(1e-3, min=0, min_exclusive=True)
    seed: int = 0


@dataclass
class EfficiencyConfig:
    """The study of one profile: a base training config with overrides, the grid, the seeds, the
    training length per data share (from the learning curves), the checks."""
    regime: Literal["scratch", "pretrained"] = "scratch"
    train_profile: str = "cpu"                  # rsdix/configs/train/<name>.yaml, the base of every arm
    train: dict = field(default_factory=dict)   # nested overrides of it (model, loop, data)
    dino: dict = field(default_factory=dict)    # DINO section of the dino arm (enabled is set)
    arms: dict = field(default_factory=dict)    # name -> ArmSpec fields: arms beyond ARM_METHODS
    comparisons: list = field(default_factory=list)   # [a, b] pairs (empty: COMPARISONS)
    primary: PrimaryConfig = field(default_factory=PrimaryConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    retrieval: list = field(default_factory=list)   # RetrievalSpec fields (empty: UCM test, all classes)
    val: dict = field(default_factory=dict)         # RetrievalSpec fields of the curves' check (empty: UCM val)
    grid: dict = field(default_factory=lambda: {"infonce": [0.1, 0.3, 1.0], "rsdix": [0.1, 0.3, 1.0]})  # arm -> shares
    # then, after every seed of `grid`, these cells, seed by seed; a list of such dicts runs one after another;
    # a `seeds` key in one of them gives that phase its own seeds
    extra: list = field(default_factory=list)
    seeds: list = field(default_factory=lambda: [0, 1, 2, 3, 4])
    steps: dict = field(default_factory=lambda: {0.1: 100, 0.3: 200, 1.0: 400})  # fraction -> steps
    steps_from_curves: bool = False             # steps per share = the curves' plateau (max over curve_arms)
    dino_length: Literal["time", "steps"] = "time"   # the dino arm: InfoNCE's wall-clock time or its steps
    dino_probe_steps: int = option(6, min=2)    # timed DINO steps that size the equal-time dino run
    check_teacher: bool = True                  # also score the EMA teacher of distillation runs
    zero_shot: list = field(default_factory=lambda: ["whu_rs19", "eurosat_ms"])
    zero_shot_max: int | None = option(None, min=1)   # subsample the zero-shot sets (None: all)
    retrieval_max: int | None = option(None, min=1)   # subsample each retrieval set's images, evenly (None: all)
    save_weights: bool = True                   # final trainable weights of each run (bf16 safetensors)
    store_queries: bool = True                  # per-query hits of every run (queries/<run>.csv.gz)
    # learning curves: val mR every `curve_every` steps up to `curve_steps[fraction]`, per curve arm and seed
    curve_arms: list = field(default_factory=lambda: ["infonce"])
    curve_seeds: list = field(default_factory=lambda: [0])
    curve_steps: dict = field(default_factory=lambda: {0.1: 300, 0.3: 600, 1.0: 1200})
    curve_every: int = option(50, min=1)
    plateau_tolerance: float = option(0.5, min=0)   # mR points: "stopped rising" = within this of the best
    # learning rate per curve arm: curves at the largest share, first curve seed, one per lr; the lr
    # whose smoothed val mR peaks highest is the arm's (empty: the base config's lr for every arm)
    lr_grid: list = field(default_factory=list)
    bootstrap: int = option(10000, min=100)        # resamples of the seed bootstrap

    def grids(self) -> list[dict]:
        """``grid``, then each dict of ``extra`` (without its ``seeds``): the phases of the run order."""
        return [self.grid, *({k: v for k, v in g.items() if k != "seeds"} for g in self.extra)]

    def phase_seeds(self) -> list[list]:
        """The seeds of each phase of :meth:`grids`."""
        return [list(self.seeds), *(list(g.get("seeds", self.seeds)) for g in self.extra)]

    def arm_spec(self, arm: str) -> ArmSpec:
        if arm in self.arms:
            return self.arms[arm]
        method, dino = ARM_METHODS[arm]
        return ArmSpec(method=method, dino=dino, lr_from="infonce" if dino else None)

    def known_arms(self) -> set:
        return set(ARM_METHODS) | set(self.arms)

    def pairs(self) -> list[tuple[str, str]]:
        return [tuple(p) for p in self.comparisons] if self.comparisons else list(COMPARISONS)

    def retrieval_specs(self) -> list[RetrievalSpec]:
        return [RetrievalSpec(**r) if isinstance(r, dict) else r for r in self.retrieval] or [RetrievalSpec()]

    def val_spec(self) -> RetrievalSpec:
        return RetrievalSpec(**{"split": "val", **self.val})

    def validate(self):
        if not isinstance(self.arms, dict):
            raise ConfigError("arms: expected a mapping of arm name -> {method, loss, dino, lr_from}")
        try:
            self.arms = {k: v if isinstance(v, ArmSpec) else config.from_dict(ArmSpec, dict(v or {}), f"arms.{k}")
                         for k, v in self.arms.items()}
        except ConfigError as exc:
            raise ConfigError(str(exc)) from None
        known_steps = {float(k) for k in self.steps}
        if not all(isinstance(g, dict) for g in self.extra):
            raise ConfigError("extra: expected a list of arm -> shares mappings")
        for arm, fractions in ((a, f) for g in self.grids() for a, f in g.items()):
            if arm not in self.known_arms():
                raise ConfigError(f"grid: unknown arm {arm!r}; known: {sorted(self.known_arms())}")
            if not isinstance(fractions, list) or not fractions:
                raise ConfigError(f"grid.{arm}: expected a list of data shares, got {fractions!r}")
            bad = [f for f in fractions if not isinstance(f, (int, float)) or not 0 < float(f) <= 1]
            if bad:
                raise ConfigError(f"grid.{arm}: data shares must be in (0, 1], got {bad}")
            missing = [f for f in fractions if float(f) not in known_steps]
            if missing and not self.steps_from_curves:
                raise ConfigError(f"steps: no training length for data share(s) {missing} (grid.{arm})")
        arms = self.arms_by_share()
        lonely = set(arms.get("dino", [])) - set(arms.get("infonce", []))
        if lonely and self.dino_length == "time":
            raise ConfigError(f"grid.dino: the dino arm trains for InfoNCE's wall-clock time, so infonce must "
                              f"run at its shares too (missing {sorted(lonely)})")
        for seeds in self.phase_seeds():
            if len(set(seeds)) != len(seeds) or not seeds:
                raise ConfigError(f"seeds: need distinct seeds, got {seeds}")
        for a, b in self.pairs():
            if a not in self.known_arms() or b not in self.known_arms():
                raise ConfigError(f"comparisons: unknown arm in {[a, b]}")
        if (self.regime == "pretrained" and self.pretrain.enabled and self.pretrain.split == "classes"
                and not self.pretrain.source_classes):
            raise ConfigError("pretrain.source_classes: a split by classes needs the source classes")
        if self.steps_from_curves:
            missing = sorted({f for g in self.grids() for fs in g.values() for f in fs}
                             - {float(k) for k in self.curve_steps})
            if missing:
                raise ConfigError(f"curve_steps: steps_from_curves needs a curve at every share, missing {missing}")

    def steps_for(self, fraction: float) -> int:
        return int({float(k): v for k, v in self.steps.items()}[float(fraction)])

    def arms_by_share(self) -> dict:
        """arm -> every share it runs at, over all phases."""
        out: dict = {}
        for g in self.grids():
            for arm, fractions in g.items():
                out.setdefault(arm, [])
                out[arm] += [float(f) for f in fractions if float(f) not in out[arm]]
        return out

    def cells(self, grid: dict | None = None) -> list[tuple[str, float]]:
        """Every (arm, share) of ``grid`` (default: all phases), once: by share, then arm in grid
        order, dino last at its share (it needs InfoNCE's time of the same seed)."""
        grids = [grid] if grid is not None else self.grids()
        out = []
        for g in grids:
            order = list(g)
            cells = {(arm, float(f)) for arm, fractions in g.items() for f in fractions}
            out += [c for c in sorted(cells, key=lambda c: (c[1], c[0] == "dino", order.index(c[0]))) if c not in out]
        return out


def load_efficiency_config(profile: str = "cpu", overrides=(), **kwargs) -> EfficiencyConfig:
    return config.load("efficiency", profile, overrides=overrides, **kwargs)
