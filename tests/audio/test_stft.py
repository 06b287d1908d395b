"""stft / istft / get_window against torch's built-ins and a float64 brute-force DFT."""

import itertools
import math

import pytest
import torch

from minispeech.audio.stft import WINDOWS, get_window, istft, stft


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


def _torch_window(name: str, n: int, periodic: bool) -> torch.Tensor:
    if name == "ones":
        return torch.ones(n)
    return getattr(torch, f"{name}_window")(n, periodic=periodic)


@pytest.mark.parametrize("name", WINDOWS)
@pytest.mark.parametrize("periodic", [True, False])
def test_windows_equal_torch(name, periodic):
    for n in (0, 1, 2, 3, 16, 25, 400, 512):
        ours = get_window(name, n, periodic=periodic)
        assert ours.shape == (n,) and ours.dtype == torch.float32
        torch.testing.assert_close(
            ours, _torch_window(name, n, periodic), atol=1e-6, rtol=0
        )


def test_window_formulas_by_hand():
    # symmetric Hann of 5 points: 0.5 - 0.5 cos(2 pi k / 4) = 0, .5, 1, .5, 0
    expected = torch.tensor([0.0, 0.5, 1.0, 0.5, 0.0], dtype=torch.float64)
    torch.testing.assert_close(get_window("hann", 5, False, torch.float64), expected)
    # periodic Hann of 4 points = the first 4 of the symmetric 5-point window
    torch.testing.assert_close(get_window("hann", 4, True, torch.float64), expected[:4])
    # Bartlett of 5 symmetric points is the triangle 0, .5, 1, .5, 0 as well
    torch.testing.assert_close(
        get_window("bartlett", 5, False, torch.float64), expected
    )
    with pytest.raises(ValueError, match="unknown window 'kaiser'"):
        get_window("kaiser", 8)


def _stft_reference(x, n_fft, hop, win_length, window, center, normalized):
    """Textbook float64 STFT of a 1-D signal: pad, slice frames, window, DFT matrix."""
    x = x.double()
    if center:
        pad = n_fft // 2
        x = torch.nn.functional.pad(x[None], (pad, pad), mode="reflect")[0]
    left = (n_fft - win_length) // 2
    w = torch.zeros(n_fft, dtype=torch.float64)
    w[left : left + win_length] = window.double()
    n_frames = 1 + (len(x) - n_fft) // hop
    frames = torch.stack([x[t * hop : t * hop + n_fft] * w for t in range(n_frames)])
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]
    n = torch.arange(n_fft, dtype=torch.float64)[None, :]
    dft = torch.exp(-2j * math.pi * k * n / n_fft)  # (F, n_fft)
    out = dft @ frames.to(dft.dtype).T  # (F, n_fft) @ (n_fft, T) -> (F, T)
    return out / math.sqrt(n_fft) if normalized else out


def test_stft_matches_float64_dft():
    x = torch.randn(2, 300)
    for n_fft, hop, win, center in [
        (64, 16, 64, True),
        (50, 7, 31, False),
        (33, 11, 20, True),
    ]:
        w = torch.hann_window(win)
        ours = stft(x, n_fft, hop, win, w, center=center, pad_mode="reflect")
        ref = torch.stack(
            [_stft_reference(x[b], n_fft, hop, win, w, center, False) for b in range(2)]
        )
        assert ours.shape == ref.shape
        assert _rel_err(ours.to(torch.complex128), ref) < 1e-5


GRID = list(
    itertools.product(
        [(64, 16, None), (64, 16, 40), (63, 10, 33), (512, 160, 400), (16, 16, 16)],
        [True, False],  # center
        ["reflect", "constant", "replicate", "circular"],
        [False, True],  # normalized
    )
)


@pytest.mark.parametrize("sizes,center,pad_mode,normalized", GRID)
def test_stft_equals_torch_stft(sizes, center, pad_mode, normalized):
    n_fft, hop, win = sizes
    x = torch.randn(3, 1601)
    w = torch.hann_window(win or n_fft)
    kwargs = dict(center=center, pad_mode=pad_mode, normalized=normalized)
    ours = stft(x, n_fft, hop, win, w, **kwargs)
    ref = torch.stft(x, n_fft, hop, win, w, return_complex=True, **kwargs)
    assert ours.shape == ref.shape and ours.dtype == ref.dtype
    assert _rel_err(ours, ref) < 1e-5


@pytest.mark.filterwarnings("ignore:A window was not provided")
def test_stft_batch_dims_defaults_and_twosided():
    x = torch.randn(2, 3, 500)
    ours = stft(x, 128)  # hop n_fft // 4, rectangular window, reflect centre padding
    ref = torch.stft(x.reshape(6, 500), 128, return_complex=True).reshape(2, 3, 65, -1)
    assert ours.shape == ref.shape and _rel_err(ours, ref) < 1e-5
    one = stft(x[0, 0], 128, 32, window=torch.hamming_window(128), onesided=False)
    ref = torch.stft(
        x[0, 0],
        128,
        32,
        window=torch.hamming_window(128),
        onesided=False,
        return_complex=True,
    )
    assert one.shape == (128, 16) and _rel_err(one, ref) < 1e-5
    xc = torch.randn(2, 400, dtype=torch.complex64)
    ours = stft(xc, 64, 16, window=torch.hann_window(64))
    ref = torch.stft(xc, 64, 16, window=torch.hann_window(64), return_complex=True)
    assert ours.shape == ref.shape and _rel_err(ours, ref) < 1e-5


def test_stft_errors():
    x = torch.randn(100)
    with pytest.raises(ValueError, match="win_length"):
        stft(x, 64, 16, win_length=80)
    with pytest.raises(ValueError, match="window must be 1-D of length win_length=64"):
        stft(x, 64, 16, window=torch.ones(32))
    with pytest.raises(ValueError, match="reflect padding"):
        stft(torch.randn(20), 64, 16)
    with pytest.raises(ValueError, match="n_fft=64"):
        stft(torch.randn(20), 64, 16, center=False)
    with pytest.raises(ValueError, match="pad_mode"):
        stft(x, 16, 4, pad_mode="mirror")


@pytest.mark.parametrize(
    "n_fft,hop,win,window,center",
    [
        (64, 16, None, "hann", True),
        (64, 16, 40, "hann", True),
        (63, 10, 33, "hamming", True),
        (512, 160, 400, "hann", True),
        (
            64,
            32,
            None,
            "hamming",
            False,
        ),  # Hamming never reaches 0: NOLA holds uncentred
        (64, 16, None, "blackman", True),
        (32, 32, None, "ones", False),
    ],
)
def test_istft_equals_torch_and_inverts(n_fft, hop, win, window, center):
    x = torch.randn(2, 2, 3000)
    w = get_window(window, win or n_fft)
    spec = stft(x, n_fft, hop, win, w, center=center)
    n = x.shape[-1] if center else None
    ours = istft(spec, n_fft, hop, win, w, center=center, length=n)
    ref = torch.istft(
        spec.reshape(4, *spec.shape[-2:]), n_fft, hop, win, w, center=center, length=n
    ).reshape(2, 2, -1)
    assert ours.shape == ref.shape
    assert _rel_err(ours, ref) < 1e-5
    valid = ours.shape[-1]  # uncentred: the tail past the last frame is not recoverable
    assert (ours - x[..., :valid]).abs().max() < 1e-5


@pytest.mark.filterwarnings("ignore:The length of signal is shorter")
def test_istft_length_pads_and_trims_like_torch():
    x = torch.randn(1000)
    w = torch.hann_window(64)
    spec = stft(x, 64, 16, window=w)
    for length in (500, 1000, 1100):
        ours = istft(spec, 64, 16, window=w, length=length)
        ref = torch.istft(spec, 64, 16, window=w, length=length)
        assert ours.shape == (length,) and _rel_err(ours, ref) < 1e-5
    ours = istft(spec, 64, 16, window=w, normalized=False)
    assert ours.shape == torch.istft(spec, 64, 16, window=w).shape


def test_istft_normalized_and_twosided_roundtrip():
    x = torch.randn(800)
    w = torch.hann_window(128)
    spec = stft(x, 128, 32, window=w, normalized=True, onesided=False)
    y = istft(spec, 128, 32, window=w, normalized=True, onesided=False, length=800)
    assert (y - x).abs().max() < 1e-5


def test_istft_refuses_windows_that_fail_nola():
    x = torch.randn(1000)
    w = torch.hann_window(64)
    spec = stft(x, 64, 16, window=w, center=False)
    # uncentred Hann: the envelope is 0 at the very first sample
    with pytest.raises(ValueError, match="NOLA"):
        istft(spec, 64, 16, window=w, center=False)
    with pytest.raises(RuntimeError):  # torch agrees that this is not invertible
        torch.istft(spec, 64, 16, window=w, center=False)
    # a hop longer than the window leaves gaps with no window at all
    spec = stft(x, 64, 48, win_length=32, window=torch.ones(32))
    with pytest.raises(ValueError, match="NOLA"):
        istft(spec, 64, 48, win_length=32, window=torch.ones(32))
