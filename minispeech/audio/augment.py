"""SpecAugment: random frequency and time masks on log-mel features.

Park et al. 2019, "SpecAugment: A Simple Data Augmentation Method for Automatic Speech
Recognition", arXiv:1904.08779, Sec. 2: a frequency mask covers mels [f0, f0 + f) with
f ~ U{0..F} and f0 ~ U{0..M - f}; a time mask covers frames [t0, t0 + t) with
t ~ U{0..W} and t0 ~ U{0..tau - t}, tau the utterance's frame count; each is applied
freq_masks / time_masks times. A float time_width sets W = max(1, floor(p * tau)) per
utterance: the adaptive masks of Park et al. 2019b, arXiv:1912.05533, Sec. 3.2.
Differs from the paper: no time warping, and masks stay inside each utterance's
valid frames (padding is left untouched). Like NeMo's SpectrogramAugmentation it masks
whenever called: the model calls it in training only. Masks are drawn for the whole
batch at once from a `torch.Generator`, so a seed reproduces them exactly.
"""

import torch
from torch import Tensor, nn


def draw_bands(
    n_bands: int, max_width: Tensor, limit: Tensor, generator: torch.Generator | None
) -> tuple[Tensor, Tensor]:
    """Random bands in [0, limit): widths w ~ U{0..max_width}, starts ~ U{0..limit - w}.

    max_width and limit are (B,); returns starts and widths, each (B, n_bands).
    """
    device, shape = limit.device, (len(limit), n_bands)
    max_width = torch.minimum(max_width, limit)[:, None]  # (B, 1)
    limit = limit[:, None]  # (B, 1)
    # floor(u * (n + 1)) is uniform on 0..n for u ~ U[0, 1); the min() guards rounding
    u = torch.rand((2, *shape), generator=generator, device=device, dtype=torch.float64)
    widths = torch.minimum((u[0] * (max_width + 1)).long(), max_width)  # (B, n_bands)
    starts = torch.minimum((u[1] * (limit - widths + 1)).long(), limit - widths)
    return starts, widths  # (B, n_bands) each


def band_mask(starts: Tensor, widths: Tensor, size: int) -> Tensor:
    """Union of the bands [start, start + width) as a bool mask (B, size)."""
    pos = torch.arange(size, device=starts.device)  # (size,)
    inside = (pos >= starts[..., None]) & (pos < (starts + widths)[..., None])
    return inside.any(dim=1)  # (B, n_bands, size) -> (B, size)


class SpecAugment(nn.Module):
    """Frequency and time masking of features (B, M, T) (Park et al. 2019).

    freq_width is the widest frequency mask in mels; time_width the widest time mask,
    in frames (int) or as a fraction of each utterance's valid length (float).
    NeMo's rect_* (SpecCutout) keys are accepted for config compatibility but only
    rect_masks=0 is supported, and rng only as None (a torch.Generator goes to
    forward instead); its implementation switches change nothing here.
    """

    def __init__(
        self,
        freq_masks: int = 0,
        freq_width: int = 10,
        time_masks: int = 0,
        time_width: int | float = 0.05,
        mask_value: float = 0.0,
        rect_masks: int = 0,
        rect_time: int = 5,
        rect_freq: int = 20,
        use_vectorized_spec_augment: bool = True,
        use_numba_spec_augment: bool = False,
        rng: object | None = None,
    ):
        super().__init__()
        if rng is not None:
            raise ValueError(
                "SpecAugment: rng is not supported; pass forward(generator=)"
            )
        if rect_masks:
            raise ValueError(
                f"SpecAugment: rect_masks={rect_masks} (SpecCutout) is not supported"
            )
        if min(freq_masks, freq_width, time_masks, time_width) < 0:
            raise ValueError("SpecAugment: mask counts and widths must be >= 0")
        if isinstance(time_width, float) and time_width > 1.0:
            raise ValueError(f"a float time_width is a fraction <= 1, got {time_width}")
        self.freq_masks, self.freq_width = freq_masks, freq_width
        self.time_masks, self.time_width = time_masks, time_width
        self.mask_value = mask_value

    def masks(
        self, feats: Tensor, feat_lens: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """The bool mask (B, M, T) that forward fills: True where a mask falls."""
        n_mels, n_frames = feats.shape[1:]
        # draw where the generator lives (the global CPU RNG when there is none)
        device = generator.device if generator is not None else torch.device("cpu")
        lens = feat_lens.long().to(device)  # (B,)
        # 1) frequency bands, the same mels for every valid frame of an utterance
        max_f = torch.full_like(lens, self.freq_width)  # (B,)
        mels = torch.full_like(lens, n_mels)  # (B,)
        starts, widths = draw_bands(self.freq_masks, max_f, mels, generator)
        freq = band_mask(starts, widths, n_mels)  # (B, M)
        # 2) time bands inside [0, len); a float width is a fraction of len
        if isinstance(self.time_width, float):
            max_t = (lens * self.time_width).long().clamp_min(1)  # (B,)
        else:
            max_t = torch.full_like(lens, self.time_width)  # (B,)
        starts, widths = draw_bands(self.time_masks, max_t, lens, generator)
        time = band_mask(starts, widths, n_frames)  # (B, T)
        valid = torch.arange(n_frames, device=device) < lens[:, None]  # (B, T)
        mask = (freq[:, :, None] | time[:, None, :]) & valid[:, None, :]  # (B, M, T)
        return mask.to(feats.device)

    def forward(
        self, feats: Tensor, feat_lens: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """feats (B, M, T), feat_lens (B,) -> masked copy of feats (B, M, T)."""
        assert feats.dim() == 3, f"feats must be (B, M, T), got {tuple(feats.shape)}"
        assert feat_lens.shape == feats.shape[:1], (
            f"feat_lens must be ({feats.shape[0]},), got {tuple(feat_lens.shape)}"
        )
        if self.freq_masks == 0 and self.time_masks == 0:
            return feats
        return feats.masked_fill(
            self.masks(feats, feat_lens, generator), self.mask_value
        )
