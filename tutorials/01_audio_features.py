# %% [markdown]
# # 01 · From a waveform to log-mel features
#
# **Expected time:** about 5 s on one CPU core (no GPU, no downloads).
# **Result:** five PNGs (waveform, spectrogram, mel filterbank, log-mel, SpecAugment)
# in the output folder, and printed checks that our STFT equals `torch.stft` and that
# `istft` inverts it to ~1e-6.
#
# Run it as a script, `python tutorials/01_audio_features.py [OUT_DIR]`, or open it
# as a notebook with jupytext. The output folder is the first argument, else
# `$MINISPEECH_TUTORIAL_OUT`, else `tutorials/out/`. Without matplotlib it still runs
# and prints its numbers; it just draws nothing.
#
# Every speech model in minispeech starts the same way: samples `(B, S)` become
# features `(B, M, T)` (B batch, S samples, M mels, T frames), exactly as NeMo's
# `AudioToMelSpectrogramPreprocessor` computes them.

# %%
import math
from pathlib import Path

import torch
from common import REPO, output_dir, pyplot, save_figure

from minispeech.audio import (
    MelSpectrogram,
    SpecAugment,
    istft,
    load_audio,
    mel_filterbank,
    stft,
)

torch.manual_seed(0)
torch.set_num_threads(1)
OUT = output_dir()  # the first argument, $MINISPEECH_TUTORIAL_OUT or tutorials/out
plt = pyplot()  # None without matplotlib: no figures, the same numbers


# %% [markdown]
# ## 1. A clip
# We take the first utterance of the bundled tinyspeech test set when it is there. If
# not, we make two seconds of a rising chirp plus a 440 Hz tone, so this always runs.

# %%
SAMPLE_RATE = 16000
manifest = REPO / "data" / "tinyspeech" / "test.jsonl"
if manifest.exists():
    from minispeech.data import read_manifest

    row = read_manifest(manifest)[0]
    wave, sr = load_audio(row["audio_filepath"], sample_rate=SAMPLE_RATE)
    title = f"{Path(row['audio_filepath']).name}: {row.get('text', '')!r}"
else:
    t = torch.arange(2 * SAMPLE_RATE) / SAMPLE_RATE
    chirp = torch.sin(2 * math.pi * (100 * t + 900 * t**2))  # 100 Hz -> 3.7 kHz
    wave = 0.5 * chirp + 0.2 * torch.sin(2 * math.pi * 440 * t)
    sr, title = SAMPLE_RATE, "synthetic chirp + 440 Hz tone"
print(f"{title}: {wave.shape[0]} samples at {sr} Hz = {wave.shape[0] / sr:.2f} s")

if plt:
    fig, ax = plt.subplots(figsize=(10, 2.5))
    ax.plot(torch.arange(len(wave)) / sr, wave, lw=0.5)
    ax.set(xlabel="time (s)", ylabel="amplitude", title=title)
    save_figure(fig, OUT / "01_waveform.png")

# %% [markdown]
# ## 2. The short-time Fourier transform
# Cut the signal into 25 ms frames every 10 ms (`hop_length=160`), multiply each by a
# Hann window and take its DFT: `X[f, t]`, shape `(F, T)` with `F = n_fft // 2 + 1`.
# Our `stft` is written from scratch (framing by `unfold`, `torch.fft.rfft`); it
# returns what `torch.stft(..., return_complex=True)` returns, and `istft`
# (overlap-add divided by the summed squared window) brings the samples back.

# %%
n_fft, hop, win = 512, 160, 400
window = torch.hann_window(win)
spec = stft(wave, n_fft, hop, win, window)  # (F, T) complex
ref = torch.stft(wave, n_fft, hop, win, window, return_complex=True)
back = istft(spec, n_fft, hop, win, window, length=len(wave))  # (S,)
print(f"spectrogram {tuple(spec.shape)}; max |ours - torch.stft| = "
      f"{(spec - ref).abs().max():.2e}; max |istft(stft(x)) - x| = "
      f"{(back - wave).abs().max():.2e}")  # fmt: skip

if plt:
    power_db = 10 * torch.log10(spec.abs() ** 2 + 1e-10)
    fig, ax = plt.subplots(figsize=(10, 3.5))
    extent = [0, len(wave) / sr, 0, sr / 2]
    img = ax.imshow(
        power_db, origin="lower", aspect="auto", extent=extent, cmap="magma"
    )
    ax.set(xlabel="time (s)", ylabel="frequency (Hz)", title="power spectrogram (dB)")
    fig.colorbar(img, ax=ax)
    save_figure(fig, OUT / "02_spectrogram.png")

# %% [markdown]
# ## 3. The mel filterbank
# Hearing resolves low frequencies finely and high ones coarsely. A mel filterbank
# sums the power spectrum under `M` triangles spaced evenly on the mel scale (Slaney's:
# linear below 1 kHz, logarithmic above), each scaled to unit area.

# %%
fb = mel_filterbank(sr, n_fft, n_mels=80)  # (M, F)
freqs = torch.linspace(0, sr / 2, n_fft // 2 + 1)
print(f"filterbank {tuple(fb.shape)}; widest filter spans "
      f"{(fb > 0).sum(1).max().item()} FFT bins, the narrowest "
      f"{(fb > 0).sum(1).min().item()}")  # fmt: skip

if plt:
    fig, ax = plt.subplots(figsize=(10, 3))
    ax.plot(freqs, fb[::4].T, lw=0.8)
    ax.set(
        xlabel="frequency (Hz)", ylabel="weight", title="every 4th of 80 mel filters"
    )
    save_figure(fig, OUT / "03_mel_filterbank.png")

# %% [markdown]
# ## 4. Log-mel features, NeMo style
# `MelSpectrogram` takes NeMo's preprocessor arguments: pre-emphasis, STFT with a
# symmetric Hann window, power, mel filterbank, `log(x + 2**-24)` and per-mel
# normalization over the valid frames. A batch of two clips of different lengths shows
# the lengths: NeMo computes `S // hop + 1` frames but reports `L // hop` valid ones,
# and fills everything past that with `pad_value` (then pads `T` to `pad_to`).

# %%
pre = MelSpectrogram(sample_rate=sr, window_size=0.025, features=80, n_fft=512).eval()
short = len(wave) // 2
audio = torch.stack([wave, torch.cat([wave[:short], torch.zeros(len(wave) - short)])])
audio_lens = torch.tensor([len(wave), short])
feats, feat_lens = pre(audio, audio_lens)  # (B, M, T), (B,)
print(f"features {tuple(feats.shape)}, feat_lens {feat_lens.tolist()}; utterance 0: "
      f"mean {feats[0, :, : feat_lens[0]].mean():.3f}, "
      f"std {feats[0, :, : feat_lens[0]].std():.3f}")  # fmt: skip

if plt:
    fig, axes = plt.subplots(2, 1, figsize=(10, 5), sharex=True)
    for b, ax in enumerate(axes):
        ax.imshow(feats[b], origin="lower", aspect="auto", cmap="magma")
        ax.axvline(feat_lens[b] - 0.5, color="cyan", lw=1)
        ax.set(ylabel="mel", title=f"utterance {b}: {feat_lens[b].item()} valid frames")
    axes[-1].set_xlabel("frame")
    save_figure(fig, OUT / "04_log_mel.png")

# %% [markdown]
# ## 5. SpecAugment
# Park et al. 2019 (arXiv:1904.08779) mask random mel bands and time spans during
# training. Time masks here are at most 5 % of each utterance's valid length and never
# touch the padding; a `torch.Generator` makes the draw reproducible.

# %%
augment = SpecAugment(freq_masks=2, freq_width=27, time_masks=5, time_width=0.05)
masked = augment(feats, feat_lens, generator=torch.Generator().manual_seed(0))
changed = masked != feats  # (B, M, T)
for b in range(2):
    n = feat_lens[b]
    print(f"utterance {b}: SpecAugment masked {changed[b, :, :n].float().mean():.1%} "
          f"of the valid features and {changed[b, :, n:].float().mean():.0%} of the "
          f"padding")  # fmt: skip

if plt:
    fig, ax = plt.subplots(figsize=(10, 2.8))
    ax.imshow(masked[1], origin="lower", aspect="auto", cmap="magma")
    ax.axvline(feat_lens[1] - 0.5, color="cyan", lw=1)
    ax.set(xlabel="frame", ylabel="mel", title="utterance 1 after SpecAugment")
    save_figure(fig, OUT / "05_specaugment.png")
