"""rsdix.training.photometric: DINO's colour jitter, grayscale, blur and solarisation on a batch, one
parameter row per image, against torchvision's own functions applied image by image."""
import pytest
import torch
from torchvision.transforms import functional as TF

from rsdix.training.photometric import (BRIGHT, CONTRAST, GRAY, HUE, JITTER, N_PARAMS, ORDER, SATUR, SIGMA, SOLAR,
                                        apply_crop_params, blur_kernel_size, draw_crop_params)


def _images(n=5, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g)


def _reference(x, row):
    """torchvision's tensor functions, one image, in the row's order."""
    ops = [lambda im: TF.adjust_brightness(im, float(row[BRIGHT])),
           lambda im: TF.adjust_contrast(im, float(row[CONTRAST])),
           lambda im: TF.adjust_saturation(im, float(row[SATUR])),
           lambda im: TF.adjust_hue(im, float(row[HUE]))]
    if row[JITTER] > 0:
        for op in row[ORDER:ORDER + 4].round().long().tolist():
            x = ops[op](x)
    if row[GRAY] > 0:
        x = TF.rgb_to_grayscale(x, num_output_channels=3)
    if row[SIGMA] > 0:
        k = blur_kernel_size(x.shape[-1])
        x = TF.gaussian_blur(x, [k, k], [float(row[SIGMA])] * 2)
    if row[SOLAR] > 0:
        x = TF.solarize(x, 128 / 255)
    return x


def test_each_image_gets_its_own_augmentation_as_torchvision_computes_it():
    torch.manual_seed(0)
    x = _images()
    rows = torch.stack([draw_crop_params(1.0, 0.0, 0.0, 0.0) for _ in range(len(x))])
    rows[1, GRAY] = 1
    rows[2, SIGMA] = 1.3
    rows[3, SOLAR] = 1
    rows[4, JITTER] = 0
    got = apply_crop_params(x, rows)
    for i in range(len(x)):
        want = _reference(x[i:i + 1], rows[i])
        assert (got[i:i + 1] - want).abs().max() < 2e-5, i
    assert got.min() >= 0 and got.max() <= 1


def test_drawn_parameters_follow_the_probabilities():
    torch.manual_seed(0)
    rows = torch.stack([draw_crop_params(0.8, 0.2, 0.5, 0.0) for _ in range(2000)])
    assert rows.shape == (2000, N_PARAMS)
    assert rows[:, JITTER].mean() == pytest.approx(0.8, abs=0.03)
    assert rows[:, GRAY].mean() == pytest.approx(0.2, abs=0.03)
    assert (rows[:, SIGMA] > 0).float().mean() == pytest.approx(0.5, abs=0.03)
    assert rows[:, SOLAR].sum() == 0
    on = rows[rows[:, JITTER] > 0]
    assert on[:, BRIGHT].min() >= 0.6 and on[:, BRIGHT].max() <= 1.4 and on[:, HUE].abs().max() <= 0.1
    assert sorted(on[0, ORDER:ORDER + 4].tolist()) == [0, 1, 2, 3]
    assert blur_kernel_size(224) == 23 and blur_kernel_size(96) == 9 and blur_kernel_size(16) == 3
