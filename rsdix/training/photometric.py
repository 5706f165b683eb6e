"""DINO's photometric augmentations applied to a batch of crops on the training device.

The data workers only cut the crops (random resized crop and flips, on PIL images, kept as uint8)
and draw, per crop, the parameters of the photometric augmentations
(:func:`draw_crop_params`); :func:`apply_crop_params` applies them to the whole batch at once on
the device: colour jitter (brightness, contrast, saturation, hue, in the drawn order, as
torchvision's ``ColorJitter``), grayscale, Gaussian blur (reflection padding, torchvision's kernel)
and solarisation. Each image gets its own parameters, and the parameters come from the item's
seeded draw, so the augmentation of a sample does not depend on the batch, the workers or a resume.

On PIL images in the workers these are most of a multi-crop's cost (the blur of each global crop
above all; ``rsdix bench --only loading`` measures both forms); on the device they are a few
elementwise passes over the batch. The arithmetic is torchvision's on float tensors, so outputs differ from the PIL
path by uint8 rounding only.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

# columns of a crop's parameter row
JITTER, BRIGHT, CONTRAST, SATUR, HUE, ORDER, GRAY, SIGMA, SOLAR = 0, 1, 2, 3, 4, 5, 9, 10, 11
N_PARAMS = 12
BRIGHTNESS, CONTRAST_RANGE, SATURATION, HUE_RANGE = 0.4, 0.4, 0.2, 0.1   # DINO's ColorJitter(0.4, 0.4, 0.2, 0.1)


def draw_crop_params(jitter_p: float, gray_p: float, blur_p: float, solarize_p: float) -> torch.Tensor:
    """One crop's parameter row, drawn from torch's global generator (seeded per item by
    :class:`rsdix.training.data_order.SeededView`)."""
    row = torch.zeros(N_PARAMS)
    u = torch.rand(8)
    if u[0] < jitter_p:
        row[JITTER] = 1
        row[BRIGHT] = 1 + BRIGHTNESS * (2 * u[1] - 1)
        row[CONTRAST] = 1 + CONTRAST_RANGE * (2 * u[2] - 1)
        row[SATUR] = 1 + SATURATION * (2 * u[3] - 1)
        row[HUE] = HUE_RANGE * (2 * u[4] - 1)
        row[ORDER:ORDER + 4] = torch.randperm(4).float()
    else:
        row[ORDER:ORDER + 4] = torch.arange(4).float()
    row[GRAY] = float(u[5] < gray_p)
    row[SIGMA] = 0.1 + 1.9 * float(torch.rand(())) if u[6] < blur_p else 0.0
    row[SOLAR] = float(u[7] < solarize_p)
    return row


def blur_kernel_size(size: int) -> int:
    """The odd blur kernel of a crop of ``size`` px: about a tenth of it, at least 3."""
    return max(3, (size // 10) | 1)


def _gray(x: torch.Tensor) -> torch.Tensor:
    return (0.2989 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)


def _per_image(v: torch.Tensor) -> torch.Tensor:
    return v.view(-1, 1, 1, 1)


def _rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    maxc, _ = x.max(dim=1)
    minc, _ = x.min(dim=1)
    eqc = maxc == minc
    cr = maxc - minc
    ones = torch.ones_like(maxc)
    s = cr / torch.where(eqc, ones, maxc)
    cr_div = torch.where(eqc, ones, cr)
    rc, gc, bc = (maxc - r) / cr_div, (maxc - g) / cr_div, (maxc - b) / cr_div
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
    h = torch.fmod((hr + hg + hb) / 6.0 + 1.0, 1.0)
    return torch.stack((h, s, maxc), dim=1)


def _hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    h, s, v = x.unbind(1)
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.to(torch.int32) % 6
    p = (v * (1.0 - s)).clamp(0.0, 1.0)
    q = (v * (1.0 - s * f)).clamp(0.0, 1.0)
    t = (v * (1.0 - s * (1.0 - f))).clamp(0.0, 1.0)
    mask = i.unsqueeze(1) == torch.arange(6, device=i.device).view(-1, 1, 1)
    a1 = torch.stack((v, q, p, p, t, v), dim=1)
    a2 = torch.stack((t, v, v, q, p, p), dim=1)
    a3 = torch.stack((p, p, t, v, v, q), dim=1)
    a4 = torch.stack((a1, a2, a3), dim=1)   # B x 3 x 6 x H x W
    return torch.einsum("bkhw,bckhw->bchw", mask.to(x.dtype), a4)


def _jitter_op(x: torch.Tensor, op: int, factor: torch.Tensor) -> torch.Tensor:
    if op == 0:   # brightness
        return (x * _per_image(factor)).clamp(0, 1)
    if op == 1:   # contrast: blend with the mean gray level of the image
        mean = _gray(x).mean(dim=(-3, -2, -1), keepdim=True)
        f = _per_image(factor)
        return (f * x + (1 - f) * mean).clamp(0, 1)
    if op == 2:   # saturation: blend with the gray image
        f = _per_image(factor)
        return (f * x + (1 - f) * _gray(x)).clamp(0, 1)
    hsv = _rgb_to_hsv(x)   # hue: rotate the hue channel
    h = torch.remainder(hsv[:, 0] + factor.view(-1, 1, 1), 1.0)
    return _hsv_to_rgb(torch.stack((h, hsv[:, 1], hsv[:, 2]), dim=1))


def _blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur, one sigma per image (torchvision's kernel, reflection padding)."""
    b, c, h, w = x.shape
    k = blur_kernel_size(h)
    half = (k - 1) * 0.5
    pos = torch.linspace(-half, half, k, device=x.device, dtype=x.dtype)
    kern = torch.exp(-0.5 * (pos.view(1, -1) / sigma.clamp_min(1e-3).view(-1, 1)) ** 2)
    kern = (kern / kern.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)   # (B*C) x k
    pad = k // 2
    y = F.pad(x.reshape(1, b * c, h, w), (pad, pad, pad, pad), mode="reflect")
    y = F.conv2d(y, kern.view(b * c, 1, 1, k), groups=b * c)
    y = F.conv2d(y, kern.view(b * c, 1, k, 1), groups=b * c)
    return y.view(b, c, h, w)


def apply_crop_params(x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """Float images ``x`` (B x 3 x H x W in [0, 1]) with each row of ``params`` (B x
    :data:`N_PARAMS`, :func:`draw_crop_params`) applied to its image; still in [0, 1]."""
    params = params.to(device=x.device, dtype=x.dtype)
    jitter = params[:, JITTER] > 0
    order = params[:, ORDER:ORDER + 4].round().long()
    factors = [params[:, BRIGHT], params[:, CONTRAST], params[:, SATUR], params[:, HUE]]
    for position in range(4):   # torchvision applies the four in a random order per image
        for op in range(4):
            chosen = _per_image(jitter & (order[:, position] == op))
            x = torch.where(chosen, _jitter_op(x, op, factors[op]), x)
    x = torch.where(_per_image(params[:, GRAY] > 0), _gray(x).expand_as(x), x)
    sigma = params[:, SIGMA]
    x = torch.where(_per_image(sigma > 0), _blur(x, sigma), x)
    x = torch.where(_per_image(params[:, SOLAR] > 0) & (x >= 128 / 255), 1.0 - x, x)   # PIL's solarize(128)
    return x
