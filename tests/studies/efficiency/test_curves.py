"""Learning curves: flattened, the lr per arm from the grid, and each share's length from the arms' mean curves."""
import pandas as pd

from rsdix.studies.efficiency.curves import choose_lrs, derived_steps, flattened


def test_flattened_by_hand():
    steps = [10, 20, 30, 40, 50, 60, 70, 80]
    assert flattened(steps, [1, 5, 8, 9, 9.2, 9.3, 9.3, 9.4], tolerance=0.5)     # +0.2 over the last quarter
    assert not flattened(steps, [1, 2, 3, 4, 5, 6, 7, 8], tolerance=0.5)         # still climbing


def _curve(arm, fraction, seed, lr, values):
    return pd.DataFrame({"regime": "pretrained", "arm": arm, "fraction": fraction, "seed": seed, "lr": lr,
                         "step": [20 * (i + 1) for i in range(len(values))], "val_mR": values})


def test_lr_choice_and_lengths_from_the_mean_curves():
    curves = pd.concat([
        _curve("infonce", 1.0, 0, 1e-3, [10, 20, 30, 30, 30, 30]),
        _curve("infonce", 1.0, 0, 5e-4, [10, 15, 20, 25, 28, 29]),
        _curve("rsdix", 1.0, 0, 1e-3, [10, 12, 14, 16, 18, 20]),
        _curve("rsdix", 1.0, 0, 5e-4, [10, 20, 24, 25, 25, 25]),
        _curve("infonce", 0.1, 0, 1e-3, [10, 20, 20, 20, 20, 20]),
        _curve("infonce", 0.1, 1, 1e-3, [10, 20, 20, 20, 20, 20]),
        _curve("rsdix", 0.1, 0, 5e-4, [5, 10, 15, 20, 20, 20]),
    ], ignore_index=True)
    lrs = choose_lrs(curves, ["infonce", "rsdix"], [5e-4, 1e-3], tolerance=0.5)
    assert lrs == {("infonce", 1.0): 1e-3, ("rsdix", 1.0): 5e-4}    # 10%: not every lr has its curve
    curves = pd.concat([curves, _curve("infonce", 0.1, 0, 5e-4, [10, 11, 12, 12, 12, 12]),
                        _curve("rsdix", 0.1, 0, 1e-3, [5, 6, 7, 8, 9, 10])], ignore_index=True)
    lrs = choose_lrs(curves, ["infonce", "rsdix"], [5e-4, 1e-3], tolerance=0.5)
    assert lrs == {("infonce", 1.0): 1e-3, ("rsdix", 1.0): 5e-4, ("infonce", 0.1): 1e-3, ("rsdix", 0.1): 5e-4}
    steps = derived_steps(curves, lrs, tolerance=0.5)
    # 100%: infonce's running mean reaches its best (30) at step 80, rsdix's (25) at 80 -> 80;
    # 10%: infonce flat from step 60 (running means 15 16.7 20 ...), rsdix from 100 -> the larger: 100
    assert steps == {1.0: 80, 0.1: 100}
