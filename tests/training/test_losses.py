import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rsdix.training import losses
from training_fixtures import clustered_pairs


def _unit(n, d, seed):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=-1)


# 3x3 case small enough to write out by hand
IMG = [[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]
TXT = [[0.8, 0.6], [0.0, 1.0], [1.0, 0.0]]


def _dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def _log_softmax_row(row):
    m = max(row)
    lse = m + math.log(sum(math.exp(v - m) for v in row))
    return [v - lse for v in row]


def test_infonce_matches_hand_computation():
    scale = 2.0
    s = [[scale * _dot(i, t) for t in TXT] for i in IMG]
    st = [[s[j][i] for j in range(3)] for i in range(3)]
    ce_i = -sum(_log_softmax_row(s[k])[k] for k in range(3)) / 3
    ce_t = -sum(_log_softmax_row(st[k])[k] for k in range(3)) / 3
    expected = (ce_i + ce_t) / 2
    got = losses.infonce(torch.tensor(IMG), torch.tensor(TXT), scale)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_siglip_matches_hand_computation():
    t, b = 3.0, -1.0
    total = 0.0
    for i in range(3):
        for j in range(3):
            z = 1.0 if i == j else -1.0
            total += -math.log(1 / (1 + math.exp(-z * (t * _dot(IMG[i], TXT[j]) + b))))
    got = losses.siglip_loss(torch.tensor(IMG), torch.tensor(TXT), t, b)
    assert got.item() == pytest.approx(total / 3, rel=1e-6)


def test_distill_kl_matches_hand_computation():
    tau = 5.0
    logits = [[tau * _dot(i, t) for t in TXT] for i in IMG]
    p_img = [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]]
    p_txt = [[0.5, 0.25, 0.25], [0.2, 0.6, 0.2], [0.1, 0.1, 0.8]]
    def kl(p_rows, l_rows):
        return sum(p * (math.log(p) - q) for pr, lr in zip(p_rows, l_rows)
                   for p, q in zip(pr, _log_softmax_row(lr))) / 3
    lt = [[logits[j][i] for j in range(3)] for i in range(3)]
    expected = 0.5 * (kl(p_img, logits) + kl(p_txt, lt))
    got = losses.distill_kl(torch.tensor(logits), torch.tensor(p_img).log(), torch.tensor(p_txt).log())
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_ot_costs_by_hand_with_remove_diag_and_coeffs():
    img, txt = torch.tensor(IMG, dtype=torch.float64), torch.tensor(TXT, dtype=torch.float64)
    c_img, c_txt = losses.ot_costs(img, txt, remove_diag=True, ii_coeff=0.5, tt_coeff=2.0)
    for i in range(3):
        for j in range(3):
            s_ii = 0.0 if i == j else _dot(IMG[i], IMG[j])
            s_tt = 0.0 if i == j else _dot(TXT[i], TXT[j])
            assert c_img[i, j].item() == pytest.approx(-(0.5 * s_ii + 2 * s_tt + _dot(IMG[i], TXT[j])))
            assert c_txt[i, j].item() == pytest.approx(-(0.5 * s_ii + 2 * s_tt + _dot(IMG[j], TXT[i])))


def test_sinkhorn_marginals_and_rows_sum_to_one():
    cost = -(_unit(6, 8, 0) @ _unit(6, 8, 1).t()) * 3
    log_p = losses.sinkhorn_log(cost, eps=0.2, iters=200)
    p = log_p.exp()
    assert torch.allclose(p.sum(1), torch.ones(6, dtype=p.dtype), atol=1e-12)  # targets: distributions
    plan = p / 6  # rows of the converged plan sum to 1/N, so P / N is the plan
    assert torch.allclose(plan.sum(0), torch.full((6,), 1 / 6, dtype=p.dtype), atol=1e-9)  # column marginal
    assert (p > 0).all()


@pytest.mark.slow
def test_sinkhorn_equals_pot_fp64():
    ot = pytest.importorskip("ot")
    cost = losses.ot_costs(_unit(7, 5, 2), _unit(7, 5, 3))[0]
    for iters in (1, 5):
        ref = ot.sinkhorn(np.full(7, 1 / 7), np.full(7, 1 / 7), cost.numpy(), reg=0.1,
                          numItermax=iters, stopThr=0.0, warn=False)
        ref = ref / ref.sum(1, keepdims=True)
        got = losses.sinkhorn_log(cost, eps=0.1, iters=iters).exp().numpy()
        np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("dtype,eps", [(torch.float16, 0.1), (torch.bfloat16, 0.01)])
def test_sinkhorn_finite_in_low_precision_where_plain_exp_overflows(dtype, eps):
    img, txt = _unit(8, 16, 4), _unit(8, 16, 5)
    img[1], txt[1] = img[0], img[0]  # near-duplicates push the similarity sums to 3
    cost = losses.ot_costs(img, txt)[0]
    assert not torch.isfinite(torch.exp(-cost.to(dtype) / eps)).all()  # the naive recipe breaks
    log_p = losses.sinkhorn_log(cost.to(dtype), eps=eps, iters=5)
    assert torch.isfinite(log_p).all()
    ref = losses.sinkhorn_log(cost, eps=eps, iters=5).exp()
    assert torch.allclose(log_p.double().exp(), ref, atol=0.06)
    assert torch.allclose(log_p.double().exp().sum(1), torch.ones(8, dtype=torch.float64), atol=0.03)


def test_gradient_reaches_student_not_teacher():
    teacher_i = _unit(5, 4, 6).requires_grad_(True)
    teacher_t = _unit(5, 4, 7).requires_grad_(True)
    student_i = _unit(5, 4, 8).requires_grad_(True)
    student_t = _unit(5, 4, 9).requires_grad_(True)
    log_p_i, log_p_t = losses.ot_targets(teacher_i, teacher_t, eps=0.1, iters=5)
    assert not log_p_i.requires_grad and not log_p_t.requires_grad
    loss = losses.distill_kl(20 * student_i @ student_t.t(), log_p_i, log_p_t)
    loss.backward()
    assert student_i.grad.abs().sum() > 0 and student_t.grad.abs().sum() > 0
    assert teacher_i.grad is None and teacher_t.grad is None


def test_distill_kl_is_zero_at_the_target_and_positive_elsewhere():
    logits = 10 * _unit(4, 3, 10) @ _unit(4, 3, 11).t()
    at_target = losses.distill_kl(logits, logits.log_softmax(1), logits.t().log_softmax(1))
    assert abs(at_target.item()) < 1e-12
    uniform = torch.full((4, 4), -math.log(4), dtype=torch.float64)
    assert losses.distill_kl(logits, uniform, uniform).item() > 0.1


def test_siglip_distill_soft_targets():
    logits = torch.tensor([[2.0, -1.0], [0.5, 3.0]], dtype=torch.float64)
    p = torch.tensor([[0.9, 0.1], [0.2, 0.8]], dtype=torch.float64)
    expected = 0.0
    for m, targets in ((logits, p), (logits.t(), p)):
        for i in range(2):
            for j in range(2):
                s = 1 / (1 + math.exp(-m[i, j].item()))
                y = targets[i, j].item()
                expected += -(y * math.log(s) + (1 - y) * math.log(1 - s)) / 2
    assert losses.siglip_distill(logits, p, p).item() == pytest.approx(expected / 2)


def test_learnable_scale_init_and_clamp():
    s = losses.LearnableScale(3.9, 1.0, 100.0)
    assert s().item() == pytest.approx(math.exp(3.9), rel=1e-6)
    with torch.no_grad():
        s.log_scale.fill_(10.0)
    assert s().item() == 100.0
    with torch.no_grad():
        s.log_scale.fill_(-3.0)
    assert s().item() == 1.0


def test_sinkhorn_rejects_bad_eps():
    with pytest.raises(ValueError, match="eps"):
        losses.sinkhorn_log(torch.zeros(2, 2), eps=0.0)


def test_ot_targets_are_float32_under_bf16_autocast():
    """issue #28: under accelerate's bf16 autocast the teacher similarities and Sinkhorn ran in bf16
    (the objective's ``.float()`` casts do not survive autocast): on 8 groups of 8 near-duplicates the
    targets were off by up to 0.029 absolute, 26% relative. They equal float32's to 1e-5 now."""
    img, txt = clustered_pairs()
    s_tt = txt @ txt.t()    # the S-BERT form: text-text similarities given
    want, want_tt = losses.ot_targets(img, txt), losses.ot_targets(img, txt, s_tt)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, got_tt = losses.ot_targets(img, txt), losses.ot_targets(img, txt, s_tt)
    for a, b in [*zip(got, want), *zip(got_tt, want_tt)]:
        assert a.dtype == torch.float32
        assert (a.exp() - b.exp()).abs().max() < 1e-5
# ---------------------------------------------------------------- the original RSDiX-CLIP recipe
# An independent float64 implementation of the original code's targets, from its published
# description (docs/training.md): S_ii, S_tt minus 100 on the diagonal (remove_diag) before the
# coefficients, C = -(S_ii' + S_tt' + S_it), Q = exp(-C / eps) / sum, then rows and columns in
# turn, then the rows normalised.

def _reference_targets(img, txt, eps, iters, remove_diag, ii, tt):
    img, txt = np.asarray(img, dtype=np.float64), np.asarray(txt, dtype=np.float64)
    eye = np.eye(len(img))
    r = 1.0 if remove_diag else 0.0
    s_ii = (img @ img.T - 100 * r * eye) * ii
    s_tt = (txt @ txt.T - 100 * r * eye) * tt
    s_it = img @ txt.T

    def sinkhorn(cost):
        q = np.exp(-cost / eps)
        q = q / q.sum()
        rows, cols = q.shape
        for _ in range(iters):
            q = q / q.sum(axis=1, keepdims=True) / cols
            q = q / q.sum(axis=0, keepdims=True) / rows
        return q / q.sum(axis=1, keepdims=True)

    return sinkhorn(-(s_ii + s_tt + s_it)), sinkhorn(-(s_ii + s_tt + s_it.T))


def _batch_with_duplicates(n, d, seed):
    img, txt = _unit(n, d, seed), _unit(n, d, seed + 100)
    img[5], txt[5] = img[2], txt[2]          # a duplicated pair
    txt[7] = txt[1]                          # a caption shared by two images
    img[9] = img[0]                          # an image repeated with another caption
    return img, txt


@pytest.mark.parametrize("eps,iters,remove_diag,ii,tt", [
    (0.1, 4, False, 1.0, 1.0), (0.1, 4, True, 1.0, 1.0), (0.15, 5, True, 1.0, 1.0),
    (0.05, 1, False, 0.5, 2.0), (0.1, 10, True, 2.0, 0.5)])
def test_original_targets_equal_an_independent_implementation(eps, iters, remove_diag, ii, tt):
    for seed in (0, 1):
        img, txt = _batch_with_duplicates(12, 8, seed)
        ref_i, ref_t = _reference_targets(img.numpy(), txt.numpy(), eps, iters, remove_diag, ii, tt)
        log_i, log_t = losses.ot_targets(img, txt, eps=eps, iters=iters, remove_diag=remove_diag,
                                         ii_coeff=ii, tt_coeff=tt, original=True)
        for got, ref in ((log_i, ref_i), (log_t, ref_t)):
            p = got.double().exp().numpy()
            np.testing.assert_allclose(p, ref, rtol=0, atol=1e-6)
            assert (p[ref == 0] == 0).all() and (ref[p == 0] < 1e-30).all()   # the removed diagonal: exact zeros
            if got.dtype == torch.float64:   # (computed in float32, the log of a tiny P carries float32's error)
                pos = ref > 1e-12
                np.testing.assert_allclose(got.numpy()[pos], np.log(ref[pos]), rtol=0, atol=1e-6)
        if remove_diag:
            assert (log_i.diagonal() == -math.inf).all() and (log_t.diagonal() == -math.inf).all()


def test_v1_sinkhorn_order_by_hand():
    """K = [[1, 2], [3, 4]], eps 1. rsdix, 1 iteration: columns sum to 4 and 6 -> [[1/4, 1/3], [3/4, 2/3]],
    rows then sum to 7/12 and 17/12. The original scales the rows first."""
    cost = -torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64).log()
    rsdix_1 = losses.sinkhorn_log(cost, eps=1.0, iters=1).exp()
    assert torch.allclose(rsdix_1, torch.tensor([[3 / 7, 4 / 7], [9 / 17, 8 / 17]], dtype=torch.float64))
    want = {1: ([[0.448276, 0.551724], [0.549296, 0.450704]], [[0.428571, 0.571429], [0.529412, 0.470588]]),
            2: ([[0.449477, 0.550523], [0.550498, 0.449502]], [[0.449275, 0.550725], [0.550296, 0.449704]])}
    for iters, (original, ours) in want.items():
        o = losses.sinkhorn_original(cost, eps=1.0, iters=iters).exp()
        r = losses.sinkhorn_log(cost, eps=1.0, iters=iters).exp()
        assert torch.allclose(o, torch.tensor(original, dtype=torch.float64), atol=1e-6)
        assert torch.allclose(r, torch.tensor(ours, dtype=torch.float64), atol=1e-6)
    converged = torch.tensor([[0.44949, 0.55051], [0.55051, 0.44949]], dtype=torch.float64)
    for form in (losses.sinkhorn_original, losses.sinkhorn_log):
        assert torch.allclose(form(cost, eps=1.0, iters=6).exp(), converged, atol=1e-5)


def test_v2_remove_diag_forms_by_hand():
    """Teacher I = T = identity, eps 1: S_ii = S_tt = S_it = E. Off: diagonal cost -3 (P = e^3 / (e^3 + 1));
    zero form: -1 (P = e / (e + 1)); minus100 form: -((1 - 100) + (1 - 100) + 1) = 197, P = [[0, 1], [1, 0]]."""
    eye = torch.eye(2, dtype=torch.float64)
    off = losses.ot_targets(eye, eye, eps=1.0, iters=20)[0].double().exp()
    assert off[0, 0].item() == pytest.approx(math.exp(3) / (math.exp(3) + 1), abs=1e-6)
    zero = losses.ot_targets(eye, eye, eps=1.0, iters=20, remove_diag=True)[0].double().exp()
    assert zero[0, 0].item() == pytest.approx(math.e / (math.e + 1), abs=1e-6)
    orig = losses.sinkhorn_original(losses.ot_costs(eye, eye, remove_diag=True, diag="minus100")[0], 1.0, 20).exp()
    assert torch.allclose(orig, torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64), atol=1e-80)
    orig = losses.ot_targets(eye, eye, eps=0.1, iters=4, remove_diag=True, original=True)[0].double().exp()
    assert torch.equal(orig, torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64))  # exp(-1970) = 0
    c_img, _ = losses.ot_costs(eye, eye, remove_diag=True, diag="minus100")
    assert c_img[0, 0].item() == pytest.approx(197.0) and c_img[0, 1].item() == 0.0
    c_img, _ = losses.ot_costs(eye, eye, remove_diag=True, ii_coeff=2.0, diag="minus100")
    assert c_img[0, 0].item() == pytest.approx(296.0)   # the coefficient scales the -99
    with pytest.raises(ValueError, match="diag"):
        losses.ot_costs(eye, eye, diag="half")


def test_sinkhorn_original_survives_a_row_far_below_the_rest():
    """exp(-C / eps) of a row 3 nats/eps below the others underflows as a whole in float32 without the
    per-row shift; the original's first row normalisation makes the shift exact."""
    cost = torch.tensor([[-3.0, -2.9, -2.8], [-2.9, -3.0, -2.95], [12.0, 12.1, 12.2]])
    got = losses.sinkhorn_original(cost, eps=0.1, iters=4).exp()
    ref = _reference_targets_from_cost(cost.double().numpy(), 0.1, 4)
    assert torch.isfinite(got).all()
    np.testing.assert_allclose(got.double().numpy(), ref, atol=1e-6)


def _reference_targets_from_cost(cost, eps, iters):
    q = np.exp(-cost / eps)
    q = q / q.sum()
    for _ in range(iters):
        q = q / q.sum(axis=1, keepdims=True)
        q = q / q.sum(axis=0, keepdims=True)
    return q / q.sum(axis=1, keepdims=True)


def test_distill_kl_ignores_zero_targets():
    """A target of probability 0 (log -inf) adds nothing, and no NaN: the KL over the other entries."""
    logits = torch.tensor([[1.0, 2.0], [0.5, -0.5]], dtype=torch.float64)
    log_p = torch.tensor([[-math.inf, 0.0], [0.0, -math.inf]], dtype=torch.float64)
    got = losses.distill_kl(logits, log_p, log_p)
    want = 0.5 * (-(logits.log_softmax(1)[0, 1] + logits.log_softmax(1)[1, 0]) / 2
                  - (logits.t().log_softmax(1)[0, 1] + logits.t().log_softmax(1)[1, 0]) / 2)
    assert got.item() == pytest.approx(want.item(), rel=1e-12)


def test_v3_siglip_distill_original_by_hand():
    """s = 0.5, scale 10, bias -10: z = -5. P = 0.5: softplus(2.5) = 2.578890 (rsdix's BCE: 2.506715);
    P = 0: log 2 (rsdix: softplus(-5) = 0.006715). One entry, N = 1, both directions the same."""
    z = torch.tensor([[10 * 0.5 - 10]], dtype=torch.float64)
    half, zero = torch.full((1, 1), 0.5, dtype=torch.float64), torch.zeros(1, 1, dtype=torch.float64)
    assert losses.siglip_distill_original(z, half, half).item() == pytest.approx(2.578890, abs=1e-6)
    assert losses.siglip_distill(z, half, half).item() == pytest.approx(2.506715, abs=1e-6)
    assert losses.siglip_distill_original(z, zero, zero).item() == pytest.approx(math.log(2), abs=1e-12)
    assert losses.siglip_distill(z, zero, zero).item() == pytest.approx(0.006715, abs=1e-6)


def test_target_stats_by_hand():
    p_img = torch.tensor([[0.5, 0.5], [0.0, 1.0]], dtype=torch.float64)
    p_txt = torch.tensor([[0.9, 0.1], [0.2, 0.8]], dtype=torch.float64)
    got = losses.target_stats(p_img.log(), p_txt.log())
    assert got["p_diag"].item() == pytest.approx(0.5 * (0.75 + 0.85))
    h = lambda row: -sum(x * math.log(x) for x in row if x > 0)  # noqa: E731
    assert got["p_entropy"].item() == pytest.approx(0.5 * ((h([0.5, 0.5]) + 0) / 2 + (h([0.9, 0.1]) + h([0.2, 0.8])) / 2))
    assert got["p_top1"].item() == 1.0   # argmax of [0.5, 0.5] is the first: row 0's own pair
    got = losses.target_stats(p_img.flip(1).log(), p_txt.log())
    assert got["p_top1"].item() == pytest.approx(0.5 * (0.5 + 1.0))   # [[0.5, 0.5], [1, 0]]: row 1 misses


def test_learnable_scale_without_clamp():
    s = losses.LearnableScale(math.log(120.0), None, None)
    assert s().item() == pytest.approx(120.0)
