"""The aligner helpers against NeMo's arrays, slow references and brute force.

NeMo's arrays: shared/nemo_reference/tts_aligner_helpers_io.npz, written by
make_refs_tasks.py `aligner_helpers_run()` with NeMo 3.0.0 (the .json beside it
describes each key): priors for (text, mel) = (5, 12), (12, 40), (7, 7); MAS on a
random soft map (B=2, T_mel=14, T_text=6, lengths (6, 14) and (3, 9)) and on a uniform
7x4 map; regulate_len at pace 1.0, 1.5 and 0.8; log_to_duration with (0, 75) and
(1, 20); average_features on 9 hand-picked frames; ForwardSumLoss with blank -1 and 0
and BinLoss on that soft map.
"""

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage

from minispeech.tts.aligner import (
    BetaBinomialInterpolator,
    _zoom_axis,
    average_features,
    beta_binomial_prior,
    bin_loss,
    binarize_attention,
    forward_sum_loss,
    hard_durations,
    log_to_duration,
    mas,
    mas_reference,
    regulate_len,
)

PRIOR_SIZES = [(5, 12), (12, 40), (7, 7)]  # (text_len, mel_len) of NeMo's priors
ATOL = 1e-5  # NeMo's float32 prior is ~5e-6 off the exact one; the rest match to 1e-7


@pytest.fixture
def ref(nemo_ref):
    arrays = np.load(nemo_ref / "tts_aligner_helpers_io.npz")
    return {key: torch.from_numpy(arrays[key]) for key in arrays.files}


# ---- beta-binomial prior ----------------------------------------------------------


@pytest.mark.parametrize("text_len,mel_len", PRIOR_SIZES)
def test_prior_matches_nemo(ref, text_len, mel_len):
    for scale, key in ((1.0, "exact"), (0.5, "scale0.5")):
        ours = beta_binomial_prior(text_len, mel_len, scale)
        nemo = ref[f"prior/{key}_{text_len}x{mel_len}"]
        torch.testing.assert_close(ours, nemo, atol=ATOL, rtol=0)
    interp = BetaBinomialInterpolator()(text_len, mel_len)
    nemo = ref[f"prior/interp_{text_len}x{mel_len}"]
    torch.testing.assert_close(interp, nemo, atol=ATOL, rtol=0)


def textbook_prior(text_len, mel_len, scale):
    """C(n,k) B(k+a, n-k+b) / B(a,b), float64, one entry at a time with math.lgamma."""
    n, out = text_len - 1, np.zeros((mel_len, text_len))
    for i, k in itertools.product(range(1, mel_len + 1), range(text_len)):
        a, b = scale * i, scale * (mel_len + 1 - i)
        log_choose = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
        log_num = math.lgamma(k + a) + math.lgamma(n - k + b) - math.lgamma(n + a + b)
        log_den = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
        out[i - 1, k] = math.exp(log_choose + log_num - log_den)
    return out


@pytest.mark.parametrize("scale", [0.5, 1.0, 2.0])
def test_prior_is_the_textbook_formula_and_rows_sum_to_one(scale):
    for text_len, mel_len in [(1, 1), (1, 5), (4, 3), (9, 31), (20, 20)]:
        prior = beta_binomial_prior(text_len, mel_len, scale)
        assert prior.shape == (mel_len, text_len) and prior.dtype == torch.float32
        expected = textbook_prior(text_len, mel_len, scale)
        np.testing.assert_allclose(prior.numpy(), expected, atol=1e-7, rtol=1e-6)
        torch.testing.assert_close(prior.sum(1), torch.ones(mel_len))


def test_zoom_is_scipy_order_1():
    rng = np.random.default_rng(0)
    for n_in, n_out in [(1, 1), (1, 4), (5, 1), (10, 3), (10, 12), (50, 12), (50, 73)]:
        x = rng.random((n_in, 3))
        expected = ndimage.zoom(x, (n_out / n_in, 1), order=1)
        np.testing.assert_allclose(_zoom_axis(x, n_out, 0), expected, atol=1e-12)


def test_interpolator_is_zoomed_transposed_bank():
    """For many sizes: the swapped-and-transposed bank prior through ndimage.zoom."""
    interp = BetaBinomialInterpolator()
    # (14, 75): bank mel 100 -> 75 frames, scipy's last row samples 99.00000000000001,
    # past the edge, and reads 0
    for text_len, mel_len in [(1, 1), (3, 24), (14, 75), (24, 124), (30, 200)]:
        bank_text, bank_mel = interp.round(text_len, 10), interp.round(mel_len, 50)
        bank = textbook_prior(bank_mel, bank_text, 1.0).T  # (bank_mel, bank_text)
        zoom = (mel_len / bank_mel, text_len / bank_text)
        expected = ndimage.zoom(bank, zoom, order=1)
        ours = interp(text_len, mel_len)
        assert ours.shape == (mel_len, text_len)
        np.testing.assert_allclose(ours.numpy(), expected, atol=1e-7)


def test_interpolator_rounding():
    assert [BetaBinomialInterpolator.round(n, 10) for n in (0, 5, 13, 14, 24)] == [
        10,
        10,
        10,
        20,  # 15 / 10 = 1.5 rounds to 2
        20,  # 25 / 10 = 2.5 rounds half to even: 2
    ]


# ---- monotonic alignment search ---------------------------------------------------


def test_mas_matches_nemo(ref):
    soft, text_lens, mel_lens = (
        ref["mas/attn_soft"],
        ref["mas/in_lens"],
        ref["mas/out_lens"],
    )
    hard = binarize_attention(soft, text_lens, mel_lens)
    assert torch.equal(hard, ref["mas/b_mas_hard"])
    assert torch.equal(hard, ref["mas/binarize_attention_parallel"])
    uniform = torch.full((1, 1, 7, 4), 0.25)  # all ties
    hard = binarize_attention(uniform, torch.tensor([4]), torch.tensor([7]))
    assert torch.equal(hard, ref["mas/uniform_7x4_hard"])
    for b in range(2):
        item = soft[b, 0, : mel_lens[b], : text_lens[b]].double().log().numpy()
        assert np.array_equal(mas_reference(item), ref[f"mas/mas_width1_item{b}"])
        assert np.array_equal(mas_reference(item), ref[f"mas/mas_numpy_item{b}"])


def test_uniform_map_ties_go_to_the_earlier_token():
    uniform = torch.full((1, 1, 7, 4), 0.25)
    hard = binarize_attention(uniform, torch.tensor([4]), torch.tensor([7]))
    assert hard_durations(hard).tolist() == [[4.0, 1.0, 1.0, 1.0]]  # as NeMo's b_mas
    assert np.array_equal(mas_reference(np.zeros((7, 4))), hard[0, 0].numpy())


def brute_force_mas(log_attn):
    """Score every monotonic path (durations >= 1 summing to T_mel); keep the best."""
    n_mel, n_text = log_attn.shape
    best, best_path = -np.inf, None
    for cuts in itertools.combinations(range(1, n_mel), n_text - 1):
        bounds = (0, *cuts, n_mel)
        path = np.zeros_like(log_attn)
        for j in range(n_text):
            path[bounds[j] : bounds[j + 1], j] = 1
        score = (log_attn * path).sum()
        if score > best:
            best, best_path = score, path
    return best_path


def test_mas_is_the_best_path_by_brute_force():
    rng = np.random.default_rng(1)
    for _ in range(200):
        n_text = int(rng.integers(1, 5))
        n_mel = int(rng.integers(n_text, 8))
        log_attn = rng.standard_normal((n_mel, n_text))  # random floats: no ties
        expected = brute_force_mas(log_attn)
        assert np.array_equal(mas_reference(log_attn), expected)
        fast = mas(
            torch.from_numpy(log_attn)[None],
            torch.tensor([n_text]),
            torch.tensor([n_mel]),
        )
        assert np.array_equal(fast[0].numpy(), expected)


def test_batched_mas_matches_reference_with_lengths():
    rng = np.random.default_rng(2)
    for _ in range(20):
        n_batch, n_mel, n_text = 5, 13, 6
        text_lens = rng.integers(1, n_text + 1, n_batch)
        mel_lens = rng.integers(text_lens, n_mel + 1)
        logits = torch.from_numpy(rng.standard_normal((n_batch, n_mel, n_text)))
        log_attn = logits.log_softmax(-1)  # padding holds real values, not -inf
        hard = mas(log_attn, torch.from_numpy(text_lens), torch.from_numpy(mel_lens))
        for b, (t_len, m_len) in enumerate(zip(text_lens, mel_lens)):
            expected = np.zeros((n_mel, n_text))
            expected[:m_len, :t_len] = mas_reference(
                log_attn[b, :m_len, :t_len].numpy()
            )
            assert np.array_equal(hard[b].numpy(), expected)
        assert hard_durations(hard[:, None]).sum(1).long().tolist() == mel_lens.tolist()


# ---- durations, length regulator, pitch averaging ---------------------------------


@pytest.mark.parametrize("pace", [1.0, 1.5, 0.8])
def test_regulate_len_matches_nemo(ref, pace):
    out, dec_lens = regulate_len(ref["regulate/durs"], ref["regulate/enc"], pace)
    torch.testing.assert_close(out, ref[f"regulate/pace{pace}/out"], atol=0, rtol=0)
    assert torch.equal(dec_lens, ref[f"regulate/pace{pace}/dec_lens"])


def regulate_len_loop(durations, enc_out, pace):
    """Repeat each token floor(d/pace + 0.5) times, one item at a time, zero-padded."""
    items = []
    for durs, enc in zip(durations.tolist(), enc_out):
        reps = [max(0, math.floor(d / pace + 0.5)) for d in durs]
        items.append(
            torch.cat([enc[j : j + 1].expand(r, -1) for j, r in enumerate(reps)])
        )
    lens = torch.tensor([len(item) for item in items])
    padded = torch.zeros(len(items), int(lens.max()), enc_out.shape[2])
    for b, item in enumerate(items):
        padded[b, : len(item)] = item
    return padded, lens


def test_regulate_len_matches_loop():
    for pace in (0.7, 1.0, 1.3):
        durations = torch.rand(4, 7) * 5 * (torch.rand(4, 7) > 0.2)
        durations[2] = 0.0  # an item with no frames at all
        enc_out = torch.randn(4, 7, 3, requires_grad=True)
        out, dec_lens = regulate_len(durations, enc_out, pace)
        expected, expected_lens = regulate_len_loop(durations, enc_out, pace)
        torch.testing.assert_close(out, expected, atol=0, rtol=0)
        assert torch.equal(dec_lens, expected_lens)
        out.sum().backward()  # each token's gradient counts its repeats
        reps = torch.floor(durations / pace + 0.5)[..., None].expand(-1, -1, 3)
        torch.testing.assert_close(enc_out.grad, reps)


def test_log_to_duration_matches_nemo(ref):
    log_dur, mask = ref["log_to_duration/log_dur"], ref["log_to_duration/mask"]
    for (low, high), key in (((0, 75), "out"), ((1, 20), "out_min1_max20")):
        expected = ref[f"log_to_duration/{key}"]
        torch.testing.assert_close(log_to_duration(log_dur, low, high, mask), expected)
        flat_mask = mask[..., 0]  # (B,T_text) works too
        torch.testing.assert_close(
            log_to_duration(log_dur, low, high, flat_mask), expected
        )


def average_features_loop(pitch, durs):
    out = torch.zeros(*pitch.shape[:2], durs.shape[1])
    for b, c in itertools.product(range(pitch.shape[0]), range(pitch.shape[1])):
        start = 0
        for j, d in enumerate(durs[b].tolist()):
            span = pitch[b, c, start : start + int(d)]
            voiced = span[span != 0]
            out[b, c, j] = voiced.mean() if len(voiced) else 0.0
            start += int(d)
    return out


def test_average_features_matches_nemo(ref):
    pitch, durs = ref["average_features/pitch"], ref["average_features/durs"]
    expected = ref["average_features/out"]
    torch.testing.assert_close(average_features(pitch, durs), expected)


def test_average_features_matches_loop():
    pitch = torch.tensor([[[0.0, 1.0, 2.0, 0.0, 4.0, 5.0, 0.0, 0.0, 7.0]]])
    durs = torch.tensor([[2, 3, 0, 4]])
    assert average_features(pitch, durs).tolist() == [[[1.0, 3.0, 0.0, 6.0]]]
    pitch = torch.randn(3, 2, 20) * (torch.rand(3, 2, 20) > 0.4)
    durs = torch.randint(0, 5, (3, 6))  # some spans empty; some sums < 20
    durs[1] = torch.tensor([2, 0, 3, 3, 4, 8])  # sums to T_mel exactly
    expected = average_features_loop(pitch, durs)
    torch.testing.assert_close(average_features(pitch, durs.float()), expected)


# ---- losses -----------------------------------------------------------------------


def forward_sum_loss_reference(attn_logprob, text_lens, mel_lens, blank_logprob=-1.0):
    """One item at a time through torch's F.ctc_loss on the item's own slice."""
    losses = []
    for b in range(attn_logprob.shape[0]):
        t_len, m_len = int(text_lens[b]), int(mel_lens[b])
        logp = attn_logprob[b, 0, :m_len, :t_len]  # (T_mel, T_text) of the item
        logp = F.pad(logp, (1, 0), value=blank_logprob).log_softmax(-1)  # blank 0
        targets = torch.arange(1, t_len + 1)[None]
        loss = F.ctc_loss(
            logp[:, None],
            targets,
            [m_len],
            [t_len],
            reduction="sum",
            zero_infinity=True,
        )
        losses.append(loss / t_len)
    return torch.stack(losses).mean()


def test_forward_sum_loss_matches_nemo(ref):
    logp, text_lens, mel_lens = (
        ref["loss/attn_logprob"],
        ref["mas/in_lens"],
        ref["mas/out_lens"],
    )
    for blank in (-1.0, 0.0):
        expected = ref[f"loss/forward_sum_blank{blank}"]
        torch.testing.assert_close(
            forward_sum_loss(logp, text_lens, mel_lens, blank), expected
        )
        ours = forward_sum_loss_reference(logp, text_lens, mel_lens, blank)
        torch.testing.assert_close(ours, expected)


def test_forward_sum_loss_matches_reference_values_and_grads():
    text_lens, mel_lens = torch.tensor([5, 2, 4, 6]), torch.tensor([11, 9, 3, 12])
    # item 2 has fewer frames than tokens: infinite, counted as 0 (zero_infinity)
    logits = torch.randn(4, 1, 12, 6, dtype=torch.float64)
    for blank in (-1.0, 0.0, -3.0):
        ours_in = logits.clone().requires_grad_()
        ref_in = logits.clone().requires_grad_()
        ours = forward_sum_loss(ours_in.log_softmax(-1), text_lens, mel_lens, blank)
        expected = forward_sum_loss_reference(
            ref_in.log_softmax(-1), text_lens, mel_lens, blank
        )
        torch.testing.assert_close(ours, expected)
        ours.backward()
        expected.backward()
        torch.testing.assert_close(ours_in.grad, ref_in.grad)
    assert torch.isfinite(ours) and ours_in.grad[2].abs().max() == 0


def test_bin_loss_matches_nemo(ref):
    hard, soft = ref["mas/b_mas_hard"], ref["mas/attn_soft"]
    torch.testing.assert_close(bin_loss(hard, soft), ref["loss/bin_loss"])


def test_bin_loss_is_the_formula():
    soft = torch.randn(3, 1, 10, 5).softmax(-1)
    soft[0, 0, 0, 0] = 0.0  # on the path (frame 0, token 0): clamped to 1e-12
    hard = binarize_attention(soft, torch.tensor([5, 3, 4]), torch.tensor([10, 7, 9]))
    expected = -(hard * soft.clamp(min=1e-12).log()).sum() / hard.sum()
    torch.testing.assert_close(bin_loss(hard, soft), expected)
