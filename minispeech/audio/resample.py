"""Band-limited resampling by windowed-sinc interpolation, in polyphase form.

References:
  J. O. Smith, "Digital Audio Resampling Home Page", CCRMA, Stanford
  (https://ccrma.stanford.edu/~jos/resample/), "Theory of Ideal Bandlimited
  Interpolation" and "Implementation": y(t) = sum_k x[k] h(t - k), with h a
  low-pass sinc truncated by a window, its cut-off at the lower of the two Nyquist
  frequencies so downsampling does not alias and upsampling does not image.
  R. E. Crochiere and L. R. Rabiner, "Multirate Digital Signal Processing"
  (Prentice-Hall, 1983), ch. 2-3: for a rational ratio L/M (reduced by the gcd)
  output sample n = qL + p sits at input time qM + pM/L, so phase p always uses
  the same L-th of the filter -- a "polyphase" filter bank of L short filters.
  J. F. Kaiser, "Nonrecursive digital filter design using the I0-sinh window
  function", Proc. IEEE ISCAS 1974:
    window     w(t) = I0(beta sqrt(1 - (t/W)^2)) / I0(beta),  |t| <= W
    beta       = 0.1102 (A - 8.7)                           if A > 50
               = 0.5842 (A - 21)^0.4 + 0.07886 (A - 21)     if 21 <= A <= 50
               = 0                                          if A < 21
    order      N = (A - 8) / (2.285 dw)     (dw = transition width, rad/sample)
  for a stop-band attenuation of A dB.

The filter (in input samples t, lower rate r = min(orig, new)):
  h(t) = c sinc(c t) w(t),  c = rolloff * r / orig   (cut-off as a fraction of the
  input Nyquist). Its transition band is centred on the cut-off, so with the
  default rolloff=0.9 it runs from 0.8 to 1.0 of the lower Nyquist: tones below
  0.8 x Nyquist pass (error ~ 10^(-A/20)), tones above the Nyquist are attenuated
  by about A dB.

Differences from Smith's resample: the filter is evaluated exactly for each of
the L phases (no table with linear interpolation between entries), which is only
practical because the ratio is rational; the signal is zero outside [0, S).
"""

import math

import torch


def kaiser_beta(attenuation_db: float) -> float:
    """Kaiser's (1974) empirical beta for a stop-band attenuation of A dB."""
    a = attenuation_db
    if a > 50:
        return 0.1102 * (a - 8.7)
    if a >= 21:
        return 0.5842 * (a - 21) ** 0.4 + 0.07886 * (a - 21)
    return 0.0


def filter_half_width(orig_sr: int, new_sr: int, rolloff: float, attenuation_db: float):
    """Half-length W of the windowed sinc, in input samples (Kaiser's order formula).

    The transition band is 2 (1 - rolloff) of the lower Nyquist, i.e.
    dw = 2 pi (1 - rolloff) rad per lower-rate sample; the order N (in lower-rate
    samples) is (A - 8) / (2.285 dw) and W = N / 2 scaled to input samples.
    """
    dw = 2 * math.pi * (1.0 - rolloff)
    order = (attenuation_db - 8.0) / (2.285 * dw)
    return 0.5 * order * orig_sr / min(orig_sr, new_sr)


def sinc_kernel(t: torch.Tensor, cutoff: float, half_width: float, beta: float):
    """h(t) = c sinc(c t) w_kaiser(t / W): the low-pass interpolation filter."""
    inside = t.abs() <= half_width
    ratio = (t / half_width).clamp(-1.0, 1.0)
    arg = torch.tensor(beta, dtype=t.dtype) * torch.sqrt(1.0 - ratio**2)
    window = torch.special.i0(arg) / torch.special.i0(torch.tensor(beta, dtype=t.dtype))
    return torch.where(inside, cutoff * torch.sinc(cutoff * t) * window, 0.0)


def polyphase_filters(
    up: int, down: int, cutoff: float, half_width: float, beta: float, dtype
):
    """The L = up phase filters, their base input offsets and the tap reach K.

    Output n = q up + p is at input time t = q down + p down / up
    = q down + base[p] + frac[p]. It reads inputs q down + base[p] + j for
    j = -K .. K+1, weighted by h(frac[p] - j).
    """
    reach = math.ceil(half_width)  # K
    phases = torch.arange(up, dtype=torch.int64)
    base = (phases * down) // up  # (L,)
    frac = ((phases * down) % up).to(torch.float64) / up  # (L,)
    taps = torch.arange(-reach, reach + 2, dtype=torch.float64)  # (2K+2,)
    t = frac[:, None] - taps[None, :]  # (L, 2K+2)
    weights = sinc_kernel(t, cutoff, half_width, beta)
    return weights.to(dtype), base, reach


def output_length(num_samples: int, orig_sr: int, new_sr: int) -> int:
    """ceil(S new / orig): every output time n / new_sr that falls inside the input."""
    return -(-num_samples * new_sr // orig_sr)


def resample(
    wave: torch.Tensor,
    orig_sr: int,
    new_sr: int,
    *,
    rolloff: float = 0.9,
    attenuation_db: float = 80.0,
) -> torch.Tensor:
    """Resample `wave` (..., S) from orig_sr to new_sr Hz -> (..., ceil(S new/orig)).

    Leading dimensions are batch dimensions. float32 and float64 are computed in
    their own precision. `rolloff` places the cut-off as a fraction of the lower
    Nyquist frequency and `attenuation_db` sets the Kaiser window (stop-band depth
    and filter length). Equal rates return a copy, bit for bit.
    """
    orig_sr, new_sr = _check_args(wave, orig_sr, new_sr, rolloff)
    if orig_sr == new_sr:
        return wave.clone()
    if wave.shape[-1] == 0:
        return wave.new_zeros(wave.shape)

    # 1) Reduce the ratio: L outputs for every M inputs.
    g = math.gcd(orig_sr, new_sr)
    up, down = new_sr // g, orig_sr // g
    # 2) Design the filter: cut-off and length from the lower of the two rates.
    cutoff = rolloff * min(orig_sr, new_sr) / orig_sr
    half_width = filter_half_width(orig_sr, new_sr, rolloff, attenuation_db)
    beta = kaiser_beta(attenuation_db)
    # weights: (L, 2K+2), one filter per output phase
    weights, base, reach = polyphase_filters(
        up, down, cutoff, half_width, beta, wave.dtype
    )
    weights = weights.to(wave.device)
    return _apply_polyphase(wave, weights, base, reach, up, down, new_sr, orig_sr)


def _apply_polyphase(wave, weights, base, reach, up, down, new_sr, orig_sr):
    """Run each phase filter at stride M over the zero-padded input, interleave."""
    lead, num_samples = wave.shape[:-1], wave.shape[-1]
    n_out = output_length(num_samples, orig_sr, new_sr)
    n_blocks = -(-n_out // up)  # Q: outputs per phase
    n_taps = weights.shape[1]
    # 3) Pad so every window q M + base[p] + (-K .. K+1) exists (zeros outside).
    right = max(0, n_blocks * down + n_taps - 1 - reach - num_samples)
    x = wave.reshape(-1, 1, num_samples)  # (B, 1, S) with B = prod(lead)
    x = torch.nn.functional.pad(x, (reach, right))  # (B, 1, S + K + right)
    # 4) Strided convolutions: phases are grouped so that one kernel holds a group's
    # filters side by side, shifted by their base offsets; the group size keeps
    # that shift (about group * M / L) near the filter length, wasting <= ~2x.
    group = max(1, (n_taps * up) // down)
    out = wave.new_empty(x.shape[0], n_blocks, up)  # (B, Q, L)
    for first in range(0, up, group):
        last = min(first + group, up)
        start = int(base[first])
        kernel = _group_kernel(weights[first:last], base[first:last] - start)
        y = torch.nn.functional.conv1d(x[..., start:], kernel, stride=down)
        out[:, :, first:last] = y[:, :, :n_blocks].transpose(1, 2)  # (B, Q, group)
    out = out.reshape(x.shape[0], n_blocks * up)[:, :n_out]  # (B, S')
    return out.reshape(*lead, n_out)  # (..., S')


def _group_kernel(weights: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Place each phase filter (G, 2K+2) at its shift in one (G, 1, span) kernel."""
    n_phases, n_taps = weights.shape
    span = int(shifts[-1]) + n_taps
    columns = shifts[:, None] + torch.arange(n_taps)  # (G, 2K+2)
    columns = columns.to(weights.device)
    kernel = weights.new_zeros(n_phases, span)
    kernel.scatter_(1, columns, weights)  # (G, span)
    return kernel[:, None, :]  # (G, 1, span): conv1d is a correlation


def _check_args(wave, orig_sr, new_sr, rolloff) -> tuple[int, int]:
    """Refuse what the filter cannot handle, naming the bad value."""
    if not isinstance(wave, torch.Tensor):
        raise TypeError(f"resample wants a torch.Tensor, got {type(wave).__name__}")
    if wave.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"resample wants float32 or float64, got {wave.dtype}")
    if wave.ndim < 1:
        raise ValueError(
            f"resample wants a (..., S) tensor, got shape {tuple(wave.shape)}"
        )
    for name, rate in (("orig_sr", orig_sr), ("new_sr", new_sr)):
        if isinstance(rate, bool) or int(rate) != rate or rate <= 0:
            raise ValueError(f"{name} must be a positive integer, got {rate!r}")
    if not 0.0 < rolloff < 1.0:
        raise ValueError(f"rolloff must be in (0, 1), got {rolloff}")
    return int(orig_sr), int(new_sr)
