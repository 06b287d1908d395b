"""Resampling speed and quality: minispeech.audio.resample vs scipy and soxr.

Run: python benchmarks/resample.py   (CPU, one thread; about 20 s)

For each ratio: time to resample a batch of 4 x 10 s (median of 5 runs), and the
error of each method on 20 tones below 0.8 x the lower Nyquist, measured against
the exact analytic signal at the new rate (error energy / signal energy, dB,
edges excluded). References: scipy.signal.resample_poly (polyphase FIR, Kaiser
window, beta 5) and soxr (libsoxr "HQ"), both installed with librosa.
"""

import math
from functools import partial

import numpy as np
import torch
from common import median_ms

from minispeech.audio.resample import resample

RATIOS = [(16000, 8000), (8000, 16000), (22050, 16000), (44100, 16000), (48000, 16000)]


def tones(sample_rate: int, n: int, low_nyquist: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    freqs = rng.uniform(20.0, 0.8 * low_nyquist, 20)
    phases, amps = rng.uniform(0, 2 * np.pi, 20), rng.uniform(0.1, 1.0, 20)
    t = np.arange(n) / sample_rate
    return (
        amps[:, None] * np.sin(2 * np.pi * freqs[:, None] * t + phases[:, None])
    ).sum(0)


def error_db(y: np.ndarray, exact: np.ndarray, edge: int) -> float:
    n = min(len(y), len(exact)) - edge
    e = y[edge:n] - exact[edge:n]
    return 10 * math.log10((e**2).sum() / (exact[edge:n] ** 2).sum())


def methods():
    """name -> fn(x (B, S) float32 ndarray, orig, new) -> (B, S') ndarray."""
    found = {"minispeech": lambda x, o, n: resample(torch.from_numpy(x), o, n).numpy()}
    try:
        from scipy.signal import resample_poly

        g = math.gcd
        found["scipy.resample_poly"] = lambda x, o, n: resample_poly(
            x, n // g(o, n), o // g(o, n), axis=-1
        )
    except ImportError:
        pass
    try:
        import soxr

        found["soxr HQ"] = lambda x, o, n: np.stack([soxr.resample(r, o, n) for r in x])
    except ImportError:
        pass
    return found


def main() -> None:
    torch.set_num_threads(1)
    table = methods()
    header = ("ratio", "method", "4x10 s (ms)", "vs ours", "error dB")
    print("{:>13} {:>20} {:>12} {:>8} {:>9}".format(*header))
    for orig, new in RATIOS:
        low_nyq = min(orig, new) / 2
        batch = np.stack([tones(orig, 10 * orig, low_nyq)] * 4).astype(np.float32)
        exact = tones(new, 10 * new, low_nyq)
        runs = {name: partial(fn, batch, orig, new) for name, fn in table.items()}
        ms = median_ms(runs, repeats=5)
        for name, fn in table.items():
            err = error_db(
                fn(batch[:1].astype(np.float64), orig, new)[0], exact, new // 10
            )
            print(
                f"{orig:>6}->{new:<6} {name:>20} {ms[name]:12.1f} "
                f"{ms[name] / ms['minispeech']:8.2f} {err:9.1f}"
            )


if __name__ == "__main__":
    main()
