"""What the data-efficiency study trains (``rsdix/configs/efficiency/<profile>.yaml``)."""
from __future__ import annotations

from dataclasses import dataclass, field

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
    "dino": ("infonce", True),      # InfoNCE + DINO (RS-M-CLIP), at InfoNCE's wall-clock time
}
# the paired comparisons: (treatment arm, control arm)
COMPARISONS = [("rsdix", "infonce"), ("rsdix-siglip", "siglip"), ("rsdix-sbert", "infonce"),
               ("dino", "infonce")]


@dataclass
class EfficiencyConfig:
    """The study of one profile: a base training config with overrides, the grid, the seeds, the
    training length per data share (from the learning curves), the checks."""
    train_profile: str = "cpu"                  # rsdix/configs/train/<name>.yaml, the base of every arm
    train: dict = field(default_factory=dict)   # nested overrides of it (model, loop, data)
    dino: dict = field(default_factory=dict)    # DINO section of the dino arm (enabled is set)
    grid: dict = field(default_factory=lambda: {"infonce": [0.1, 0.3, 1.0], "rsdix": [0.1, 0.3, 1.0]})  # arm -> shares
    # then, after every seed of `grid`, these cells, seed by seed; a list of such dicts runs one after another
    extra: list = field(default_factory=list)
    seeds: list = field(default_factory=lambda: [0, 1, 2, 3, 4])
    steps: dict = field(default_factory=lambda: {0.1: 100, 0.3: 200, 1.0: 400})  # fraction -> steps
    dino_probe_steps: int = option(6, min=2)    # timed DINO steps that size the equal-time dino run
    check_teacher: bool = True                  # also score the EMA teacher of distillation runs
    zero_shot: list = field(default_factory=lambda: ["whu_rs19", "eurosat_ms"])
    zero_shot_max: int | None = option(None, min=1)   # subsample the zero-shot sets (None: all)
    save_weights: bool = True                   # final trainable weights of each run (bf16 safetensors)
    # learning curves: InfoNCE, val mR every `curve_every` steps up to `curve_steps[fraction]`
    curve_seeds: list = field(default_factory=lambda: [0])
    curve_steps: dict = field(default_factory=lambda: {0.1: 300, 0.3: 600, 1.0: 1200})
    curve_every: int = option(50, min=1)
    plateau_tolerance: float = option(0.5, min=0)   # mR points: "stopped rising" = within this of the best
    bootstrap: int = option(10000, min=100)        # resamples of the seed bootstrap

    def grids(self) -> list[dict]:
        """``grid``, then each dict of ``extra``: the phases of the run order."""
        return [self.grid, *self.extra]

    def validate(self):
        known_steps = {float(k) for k in self.steps}
        if not all(isinstance(g, dict) for g in self.extra):
            raise ConfigError("extra: expected a list of arm -> shares mappings")
        for arm, fractions in ((a, f) for g in self.grids() for a, f in g.items()):
            if arm not in ARM_METHODS:
                raise ConfigError(f"grid: unknown arm {arm!r}; known: {sorted(ARM_METHODS)}")
            if not isinstance(fractions, list) or not fractions:
                raise ConfigError(f"grid.{arm}: expected a list of data shares, got {fractions!r}")
            bad = [f for f in fractions if not isinstance(f, (int, float)) or not 0 < float(f) <= 1]
            if bad:
                raise ConfigError(f"grid.{arm}: data shares must be in (0, 1], got {bad}")
            missing = [f for f in fractions if float(f) not in known_steps]
            if missing:
                raise ConfigError(f"steps: no training length for data share(s) {missing} (grid.{arm})")
        arms = self.arms()
        lonely = set(arms.get("dino", [])) - set(arms.get("infonce", []))
        if lonely:
            raise ConfigError(f"grid.dino: the dino arm trains for InfoNCE's wall-clock time, so infonce must "
                              f"run at its shares too (missing {sorted(lonely)})")
        if len(set(self.seeds)) != len(self.seeds) or not self.seeds:
            raise ConfigError(f"seeds: need distinct seeds, got {self.seeds}")

    def steps_for(self, fraction: float) -> int:
        return int({float(k): v for k, v in self.steps.items()}[float(fraction)])

    def arms(self) -> dict:
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
