"""TTS speed: synthesis real-time factor per stage and vocoder; MAS fast vs readable.

Synthesis: one sentence of the corpus's TTS voice (74 characters, 4.7 s of
speech) through FastPitch (configs/tts/fastpitch_tiny.yaml) with given durations of
4 frames per character (the voice's average; the cost of a forward does not depend
on the weights, but at random initialisation the predicted durations are 0), then
each vocoder on that mel: Griffin-Lim (32 iterations, plain and fast/momentum) and
HiFi-GAN (configs/tts/hifigan_tiny.yaml's generator, and hifigan_small.yaml's).
RTF = compute seconds / audio seconds (lower is faster); RTFx = 1 / RTF.

MAS: `mas` (vectorised over the batch and the tokens, one loop over frames) against
`mas_reference` (the readable double loop, one utterance at a time) on random
(B, T, U) log-attention maps; the ratio is reference time / fast time.

Usage: python benchmarks/tts.py [--threads 2] [--repeat 5]
Expected: about a minute on 2 CPU threads; the numbers depend on the machine.
"""

import argparse
from pathlib import Path

import numpy as np
import torch
from common import median_ms

from minispeech.core.config import load_recipe
from minispeech.tts.fastpitch_model import FastPitchModel
from minispeech.tts.griffin_lim import griffin_lim_from_mel
from minispeech.tts.hifigan_model import HifiGanModel
from minispeech.tts.mas import mas, mas_reference

REPO = Path(__file__).resolve().parents[1]
TEXT = "no thank you nina see you tomorrow and send a message to frank on sunday"


def build(cls, name: str):
    cfg = load_recipe(REPO / f"configs/tts/{name}.yaml", REPO, "unused")
    return cls(cfg["model"]).eval()


def synthesis_table(repeat: int) -> None:
    fastpitch = build(FastPitchModel, "fastpitch_tiny")
    tokens = fastpitch.parse(TEXT)  # (1, U)
    durs = torch.full(tokens.shape, 4.0)  # (1, U) frames per character
    lens = torch.tensor([tokens.shape[1]])

    def acoustic():
        return fastpitch.fastpitch(tokens, lens, durs=durs).spect  # (1, M, T)

    with torch.no_grad():
        mel = acoustic()
        pre = fastpitch.preprocessor
        tiny = build(HifiGanModel, "hifigan_tiny")
        small = build(HifiGanModel, "hifigan_small")
        fns = {
            "FastPitch (tiny)": acoustic,
            "Griffin-Lim 32 it.": lambda: griffin_lim_from_mel(mel, pre, 32, 0.0),
            "fast Griffin-Lim 32 it.": lambda: griffin_lim_from_mel(mel, pre, 32),
            "HiFi-GAN tiny": lambda: tiny.convert_spectrogram_to_audio(mel),
            "HiFi-GAN small": lambda: small.convert_spectrogram_to_audio(mel),
        }
        times = median_ms(fns, repeat)
    seconds = mel.shape[-1] * pre.hop_length / pre.sample_rate
    print(f"one sentence: {tokens.shape[1]} characters, {seconds:.2f} s of audio")
    print(f"{'stage':<32} {'ms':>8} {'RTF':>8} {'RTFx':>7}")
    for name, ms in times.items():
        rtf = ms / 1e3 / seconds
        print(f"{name:<32} {ms:>8.1f} {rtf:>8.4f} {1 / rtf:>7.0f}")
    for vocoder in ("fast Griffin-Lim 32 it.", "HiFi-GAN tiny"):
        total = times["FastPitch (tiny)"] + times[vocoder]
        rtf = total / 1e3 / seconds
        print(f"{'text -> ' + vocoder:<32} {total:>8.1f} {rtf:>8.4f} {1 / rtf:>7.0f}")


def mas_times(shape: tuple, repeat: int) -> dict:
    """Median ms of `mas` and of `mas_reference` per item on random (B, T, U) maps."""
    log_attn = torch.randn(shape).log_softmax(-1)  # (B, T, U)
    text_lens = torch.full((shape[0],), shape[2])
    mel_lens = torch.full((shape[0],), shape[1])
    maps = [np.asarray(m, dtype=np.float64) for m in log_attn]
    return median_ms(
        {
            "fast": lambda: mas(log_attn, text_lens, mel_lens),
            "readable": lambda: [mas_reference(m) for m in maps],
        },
        repeat,
    )


def mas_table(repeat: int) -> None:
    print(f"\n{'MAS (B x T x U)':<22} {'fast ms':>9} {'readable ms':>12} {'ratio':>7}")
    for shape in ((1, 280, 75), (16, 280, 75), (16, 800, 150)):
        times = mas_times(shape, repeat)
        label = " x ".join(str(n) for n in shape)
        fast, readable = times["fast"], times["readable"]
        print(f"{label:<22} {fast:>9.1f} {readable:>12.1f} {readable / fast:>6.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"{args.threads} threads, median of {args.repeat} rounds")
    synthesis_table(args.repeat)
    mas_table(args.repeat)


if __name__ == "__main__":
    main()
