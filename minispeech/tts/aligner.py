"""The learned aligner's helpers: alignment prior, losses, durations, length regulator.

Badlani et al. 2022, "One TTS Alignment To Rule Them All" (arXiv:2108.10447), as
NeMo's FastPitch uses it (facts in shared/nemo_reference/README_tasks.md):
- the forward-sum objective: -log of the probability of the text summed over every
  monotonic alignment, computed as a CTC loss over the attention log-probs with a
  blank column (`forward_sum_loss`);
- the static 2D alignment prior, a beta-binomial over tokens for each mel frame
  (`beta_binomial_prior`, NeMo's `BetaBinomialInterpolator`);
- the binarization: A_hard = MAS(A_soft) (in mas.py, re-exported here) and
  L_bin = -sum(A_hard * log A_soft) / sum(A_hard) (`bin_loss`);
- FastPitch's (Lancucki 2021, arXiv:2006.06873) duration and pitch plumbing around
  them: `log_to_duration`, `regulate_len`, `average_features`.

Differs from the paper: the math is the same; the details the paper leaves open
follow NeMo: the blank column is a constant log-prob (`blank_logprob`, default -1),
L_bin is divided by sum(A_hard) (the number of mel frames), and the interpolated
prior keeps NeMo's transposed, unnormalised layout (see BetaBinomialInterpolator).
"""

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from minispeech.nn.ctc import ctc_loss
from minispeech.tts.mas import binarize_attention, hard_durations, mas, mas_reference

__all__ = [
    "BetaBinomialInterpolator",
    "average_features",
    "beta_binomial_prior",
    "bin_loss",
    "binarize_attention",
    "forward_sum_loss",
    "hard_durations",
    "log_to_duration",
    "mas",
    "mas_reference",
    "regulate_len",
]
# NeMo's value for the columns past each text length: log 0 that stays finite
_PAD_LOGPROB = -1e15


def beta_binomial_prior(
    text_len: int, mel_len: int, scaling_factor: float = 1.0
) -> torch.Tensor:
    """P[i, j] = BetaBinom(j; n=T_text-1, a=s*i, b=s*(T_mel+1-i)), i = 1..T_mel.

    Returns (T_mel, T_text) float32; each mel row is a distribution over tokens whose
    mode moves from the first token to the last as i goes from 1 to T_mel. Computed
    in float64 (NeMo's float32 values differ from the exact ones by up to ~5e-6).
    """
    assert text_len >= 1 and mel_len >= 1, (text_len, mel_len)
    return _log_beta_binomial(text_len, mel_len, scaling_factor).exp().float()


def _log_beta_binomial(text_len: int, mel_len: int, scale: float) -> torch.Tensor:
    """log P of beta_binomial_prior in float64, (T_mel, T_text)."""
    frame = torch.arange(1, mel_len + 1, dtype=torch.float64)[:, None]  # (T_mel,1)
    k = torch.arange(text_len, dtype=torch.float64)[None, :]  # (1,T_text)
    n = torch.tensor(text_len - 1.0, dtype=torch.float64)
    a, b = scale * frame, scale * (mel_len + 1 - frame)
    lg = torch.lgamma
    # log C(n, k) + log B(k+a, n-k+b) - log B(a, b), with B(x, y) = G(x)G(y)/G(x+y)
    log_choose = lg(n + 1) - lg(k + 1) - lg(n - k + 1)  # (1,T_text)
    log_beta_num = lg(k + a) + lg(n - k + b) - lg(n + a + b)  # (T_mel,T_text)
    log_beta_den = lg(a) + lg(b) - lg(a + b)  # (T_mel,1)
    return log_choose + log_beta_num - log_beta_den


class BetaBinomialInterpolator:
    """NeMo's fast prior: a cached prior at rounded sizes, linearly resized.

    The sizes round to max(1, round((len + 1) / to)) * to with numpy's round (half to
    even). As NeMo (and NVIDIA's DeepLearningExamples it comes from), the cached
    prior is built with the two sizes swapped and then transposed: for each token a
    beta-binomial over the rounded mel frames, so its columns, not its rows, sum to 1.
    It is then resized to (T_mel, T_text) as scipy.ndimage.zoom(order=1) and NOT
    renormalised (the 12 tokens x 40 frames case sums to 9.6, not 40; with 75 frames
    the last row is all 0, as scipy's, see _zoom_axis). Differs from
    NeMo only in the call order: NeMo's is `__call__(w=mel_len, h=text_len)`.
    """

    def __init__(self, round_mel_len_to: int = 50, round_text_len_to: int = 10):
        self.round_mel_len_to = round_mel_len_to
        self.round_text_len_to = round_text_len_to

    @staticmethod
    def round(length: int, to: int) -> int:
        return max(1, int(np.round((length + 1) / to))) * to

    def __call__(self, text_len: int, mel_len: int) -> torch.Tensor:
        bank_text = self.round(text_len, self.round_text_len_to)
        bank_mel = self.round(mel_len, self.round_mel_len_to)
        # sizes swapped as NeMo: (bank_text, bank_mel) -> .T -> (bank_mel, bank_text)
        prior = _cached_prior(text_len=bank_mel, mel_len=bank_text).T
        out = _zoom_axis(_zoom_axis(prior, mel_len, 0), text_len, 1)  # (T_mel,T_text)
        return torch.from_numpy(out).float()


@lru_cache(maxsize=500)
def _cached_prior(text_len: int, mel_len: int) -> np.ndarray:
    """beta_binomial_prior in float64 numpy, (T_mel, T_text)."""
    return _log_beta_binomial(text_len, mel_len, 1.0).exp().numpy()


def _zoom_axis(x: np.ndarray, n_out: int, axis: int) -> np.ndarray:
    """Linear resize of one axis as scipy.ndimage.zoom(order=1) (corners aligned):
    output o samples input position o * (n_in - 1) / (n_out - 1). As scipy's default
    mode="constant", a position past the last input (by rounding: 74 * (99 / 74) is
    99.00000000000001) reads 0, so some sizes get an all-zero last row or column."""
    n_in = x.shape[axis]
    scale = (n_in - 1) / (n_out - 1) if n_out > 1 else 1.0
    pos = np.arange(n_out) * scale  # (n_out,) input coordinates
    inside = pos <= n_in - 1
    lo = np.minimum(np.floor(pos).astype(int), n_in - 1)
    hi = np.minimum(lo + 1, n_in - 1)
    weight_shape = [-1 if d == axis else 1 for d in range(x.ndim)]
    frac = (pos - lo).reshape(weight_shape)
    out = np.take(x, lo, axis) * (1 - frac) + np.take(x, hi, axis) * frac
    return out * inside.reshape(weight_shape)


def log_to_duration(
    log_dur: torch.Tensor, min_dur: float, max_dur: float, mask: torch.Tensor
) -> torch.Tensor:
    """Predicted log(1 + d) -> durations clamp(exp(log_dur) - 1, min, max) * mask.

    log_dur (B,T_text); mask (B,T_text,1) or (B,T_text), 1 on real tokens.
    """
    assert log_dur.ndim == 2, f"log_dur must be (B,T_text): {log_dur.shape}"
    mask = mask[..., 0] if mask.ndim == 3 else mask  # (B,T_text)
    return torch.clamp(torch.exp(log_dur) - 1, min_dur, max_dur) * mask


def regulate_len(
    durations: torch.Tensor, enc_out: torch.Tensor, pace: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """FastPitch's length regulator: token j repeated floor(d_j / pace + 0.5) times.

    durations (B,T_text), enc_out (B,T_text,D) -> (out (B,T_mel,D), dec_lens (B,));
    T_mel = max(dec_lens), frames past each dec_len are 0.
    """
    assert enc_out.ndim == 3, f"enc_out must be (B,T_text,D): {enc_out.shape}"
    assert durations.shape == enc_out.shape[:2], (durations.shape, enc_out.shape)
    if not durations.is_floating_point():
        durations = durations.float()
    reps = torch.floor(durations / pace + 0.5).clamp(min=0).long()  # (B,T_text)
    dec_lens = reps.sum(1)  # (B,)
    ends = reps.cumsum(1)  # (B,T_text) frame where each token's span stops
    n_batch, n_text, dim = enc_out.shape
    n_frames = int(dec_lens.max()) if n_batch else 0
    frames = torch.arange(n_frames, device=enc_out.device).expand(n_batch, -1)
    # token of frame t: the first j whose span ends after t
    token = torch.searchsorted(ends, frames.contiguous(), right=True)  # (B,T_mel)
    token = token.clamp(max=n_text - 1)
    out = enc_out.gather(1, token[..., None].expand(-1, -1, dim))  # (B,T_mel,D)
    out = out.masked_fill((frames >= dec_lens[:, None])[..., None], 0.0)
    return out, dec_lens


def average_features(pitch: torch.Tensor, durs: torch.Tensor) -> torch.Tensor:
    """Per-token mean of the NON-ZERO frames of its span (0 if none).

    pitch (B,C,T_mel) frame values, durs (B,T_text) frames per token -> (B,C,T_text).
    Zero frames are unvoiced pitch and are left out of the mean.
    """
    assert pitch.ndim == 3, f"pitch must be (B,C,T_mel): {pitch.shape}"
    assert durs.ndim == 2 and durs.shape[0] == pitch.shape[0], (durs.shape, pitch.shape)
    n_batch, n_channels, n_frames = pitch.shape
    ends = durs.long().cumsum(1).clamp(max=n_frames)  # (B,T_text)
    starts = F.pad(ends[:, :-1], (1, 0))  # (B,T_text)
    ends = ends[:, None].expand(-1, n_channels, -1)  # (B,C,T_text)
    starts = starts[:, None].expand(-1, n_channels, -1)
    # sums over a span as differences of prefix sums, (B,C,T_mel) -> (B,C,T_mel+1)
    total = F.pad(pitch.cumsum(2), (1, 0))
    count = F.pad((pitch != 0).cumsum(2), (1, 0))
    span_total = total.gather(2, ends) - total.gather(2, starts)  # (B,C,T_text)
    span_count = count.gather(2, ends) - count.gather(2, starts)
    mean = span_total / span_count.clamp(min=1).to(pitch.dtype)
    return torch.where(span_count == 0, torch.zeros_like(mean), mean)


def forward_sum_loss(
    attn_logprob: torch.Tensor,
    text_lens: torch.Tensor,
    mel_lens: torch.Tensor,
    blank_logprob: float = -1.0,
) -> torch.Tensor:
    """-log P(text | mel) summed over monotonic alignments, as a CTC loss.

    attn_logprob (B,1,T_mel,T_text) unmasked log-probs; the targets are tokens
    1..T_text in order and "blank" is an extra column 0 (a frame on no token):
    1) pad the blank column with blank_logprob; 2) set columns past text_len to
    -1e15; 3) log_softmax over the T_text+1 columns; 4) CTC with input lengths
    mel_lens, mean reduction (loss / text_len, then batch mean). Items with no
    alignment (mel_len < text_len) count 0, as NeMo's CTCLoss(zero_infinity=True),
    through minispeech's ctc_loss(zero_infinity=True).
    """
    assert attn_logprob.ndim == 4 and attn_logprob.shape[1] == 1, attn_logprob.shape
    n_batch, _, _, n_text = attn_logprob.shape
    device = attn_logprob.device
    text_lens, mel_lens = text_lens.to(device), mel_lens.to(device)
    log_probs = F.pad(attn_logprob[:, 0], (1, 0), value=blank_logprob)  # (B,T_mel,V)
    column = torch.arange(n_text + 1, device=device)  # V = T_text + 1
    past_text = column[None, None, :] > text_lens[:, None, None]  # (B,1,V)
    log_probs = log_probs.masked_fill(past_text, _PAD_LOGPROB).log_softmax(-1)
    targets = torch.arange(1, n_text + 1, device=device).expand(n_batch, -1)  # (B,U)
    return ctc_loss(log_probs, targets, mel_lens, text_lens, zero_infinity=True)


def bin_loss(attn_hard: torch.Tensor, attn_soft: torch.Tensor) -> torch.Tensor:
    """L_bin = -sum(log A_soft on the hard path) / number of hard-aligned frames.

    attn_hard, attn_soft (B,1,T_mel,T_text); soft values are clamped to >= 1e-12.
    """
    assert attn_hard.shape == attn_soft.shape, (attn_hard.shape, attn_soft.shape)
    on_path = attn_soft[attn_hard == 1].clamp(min=1e-12)  # (N,) N = frames on paths
    return -torch.log(on_path).sum() / attn_hard.sum()
