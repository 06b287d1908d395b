"""Speed of the feature front end: minispeech's stft / MelSpectrogram vs torch.stft.

The reference column runs the same math with `torch.stft` (PyTorch's C++ STFT), so
the ratio shows what the from-scratch framing + rfft costs. Batch 16 x 10 s at
16 kHz on the CPU, median of --runs timings after one warm-up. Target: ratio <= 1.2.

    python benchmarks/features.py [--runs 7] [--threads 1]

Takes about 20 s on one core.
"""

import argparse

import torch
from common import median_ms

from minispeech.audio import MelSpectrogram, istft, stft

SAMPLE_RATE = 16000
N_FFT, HOP, WIN = 512, 160, 400  # 25 ms window, 10 ms hop, as NeMo's recipes


def torch_mel(model: MelSpectrogram, audio, audio_lens):
    """MelSpectrogram's eval-mode math (NeMo defaults) written around torch.stft."""
    x = torch.cat([audio[:, :1], audio[:, 1:] - 0.97 * audio[:, :-1]], dim=1)
    x = x.masked_fill(torch.arange(x.shape[1]) >= audio_lens[:, None], 0.0)
    # (B, S) -> complex (B, F, T)
    spec = torch.stft(
        x,
        N_FFT,
        HOP,
        WIN,
        model.window,
        center=True,
        pad_mode="constant",
        return_complex=True,
    )
    power = torch.sqrt(torch.view_as_real(spec).pow(2).sum(-1)).pow(2.0)
    mel = torch.log(torch.matmul(model.fb, power) + 2**-24)  # (B, M, T)
    lens = audio_lens // HOP
    valid = (torch.arange(mel.shape[-1]) < lens[:, None])[:, None, :]  # (B, 1, T)
    n = lens[:, None, None].float()
    mean = mel.masked_fill(~valid, 0).sum(-1, keepdim=True) / n
    var = (mel - mean).masked_fill(~valid, 0).pow(2).sum(-1, keepdim=True) / (n - 1)
    mel = ((mel - mean) / (var.sqrt() + 1e-5)).masked_fill(~valid, 0.0)
    pad = -mel.shape[-1] % 16
    return torch.nn.functional.pad(mel, (0, pad)), lens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    n = int(args.seconds * SAMPLE_RATE)
    audio = torch.randn(args.batch, n) * 0.1  # (B, S)
    lens = torch.randint(n // 2, n + 1, (args.batch,))
    lens[0] = n
    window = torch.hann_window(WIN)
    model = MelSpectrogram(window_size=0.025, n_fft=N_FFT, features=80).eval()
    spec = torch.stft(audio, N_FFT, HOP, WIN, window, return_complex=True)

    # the two columns must compute the same thing before their speed means anything
    ours, ref = model(audio, lens)[0], torch_mel(model, audio, lens)[0]
    assert (ours - ref).abs().max() < 1e-3, (ours - ref).abs().max()
    assert torch.allclose(
        stft(audio, N_FFT, HOP, WIN, window), spec, rtol=1e-5, atol=1e-4
    )

    rows = [
        ("stft", lambda: stft(audio, N_FFT, HOP, WIN, window),
         lambda: torch.stft(audio, N_FFT, HOP, WIN, window, return_complex=True)),
        ("istft", lambda: istft(spec, N_FFT, HOP, WIN, window, length=n),
         lambda: torch.istft(spec, N_FFT, HOP, WIN, window, length=n)),
        ("MelSpectrogram", lambda: model(audio, lens),
         lambda: torch_mel(model, audio, lens)),
    ]  # fmt: skip
    print(f"batch {args.batch} x {args.seconds:g} s at {SAMPLE_RATE} Hz, CPU, "
          f"{args.threads} thread(s), median of {args.runs} runs")  # fmt: skip
    print(
        f"| {'op':<15} | {'minispeech ms':>13} | {'torch.stft ms':>13} | {'ratio':>5} |"
    )
    print(f"|{'-' * 17}|{'-' * 15}|{'-' * 15}|{'-' * 7}|")
    with torch.inference_mode():
        for name, ours_fn, ref_fn in rows:
            ms = median_ms({"ours": ours_fn, "torch": ref_fn}, args.runs)
            t_ours, t_ref = ms["ours"], ms["torch"]
            print(f"| {name:<15} | {t_ours:>13.1f} | {t_ref:>13.1f} | "
                  f"{t_ours / t_ref:>5.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
