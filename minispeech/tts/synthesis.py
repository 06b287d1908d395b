"""Text -> waveform: an acoustic model (FastPitch) plus a vocoder, and word timings.

`Synthesizer(acoustic, vocoder)` runs the two stages NeMo's TTS inference runs:
  text -> acoustic.parse -> tokens (1, U) -> acoustic.generate(tokens, pace)
       -> mel (1, M, T) and token durations (1, U) in frames
       -> vocoder: Griffin-Lim on the mel turned back into a linear magnitude
          (minispeech/tts/griffin_lim.py), or a HiFi-GAN model's
          convert_spectrogram_to_audio -> wave (S,).
The token durations also give each word's predicted start and end (the frames of its
characters, hop / sample_rate seconds each), in the manifest's `words` format, so
they can be compared with a recording's word timings (`word_duration_error`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

GRIFFIN_LIM = "griffin-lim"


@dataclass
class Synthesis:
    """One synthesized utterance."""

    wave: Tensor  # (S,)
    mel: Tensor  # (M, T)
    durations: Tensor  # (U,) frames per token
    words: list  # [[word, start_s, end_s], ...]
    sample_rate: int


class Synthesizer:
    """`synth(text, pace=1.0) -> Synthesis` with an acoustic model and a vocoder
    (the string "griffin-lim" or a model with convert_spectrogram_to_audio)."""

    def __init__(self, acoustic, vocoder=GRIFFIN_LIM, gl_iters: int = 32):
        self.acoustic = acoustic.eval()
        self.vocoder = vocoder if vocoder == GRIFFIN_LIM else vocoder.eval()
        self.gl_iters = gl_iters
        pre = acoustic.preprocessor
        self.sample_rate = int(pre.sample_rate)
        self.hop_length = int(pre.hop_length)
        if self.vocoder != GRIFFIN_LIM:
            rate = int(getattr(self.vocoder, "sample_rate", self.sample_rate))
            if rate != self.sample_rate:
                raise ValueError(
                    f"the vocoder works at {rate} Hz but the acoustic model at "
                    f"{self.sample_rate} Hz"
                )

    @torch.inference_mode()
    def __call__(self, text: str, pace: float = 1.0) -> Synthesis:
        tokens = self.acoustic.parse(text)  # (1, U)
        out = self.acoustic.generate(tokens, pace=pace)
        mel = out.spect[0, :, : int(out.dec_lens[0])]  # (M, T)
        durations = out.durations[0]  # (U,)
        wave = self.vocode(mel)  # (S,)
        words = token_word_times(
            tokens[0], durations, self.acoustic.tokenizer, pace, self.frame_seconds
        )
        return Synthesis(wave, mel, durations, words, self.sample_rate)

    @property
    def frame_seconds(self) -> float:
        return self.hop_length / self.sample_rate

    def vocode(self, mel: Tensor) -> Tensor:
        """mel (M, T) -> wave (S,) with the chosen vocoder."""
        if self.vocoder == GRIFFIN_LIM:
            return griffin_lim_vocoder(self.acoustic.preprocessor, mel, self.gl_iters)
        device = next(self.vocoder.parameters()).device
        audio = self.vocoder.convert_spectrogram_to_audio(mel[None].to(device))
        return audio[0].cpu()  # (S,)


def griffin_lim_vocoder(preprocessor, mel: Tensor, n_iters: int = 32) -> Tensor:
    """A log-mel (M, T) of `preprocessor` (a MelSpectrogram) -> wave (T * hop,):
    the filterbank's pseudo-inverse gives a linear magnitude, fast Griffin-Lim
    (momentum 0.99) a phase."""
    from minispeech.tts.griffin_lim import griffin_lim_from_mel

    return griffin_lim_from_mel(mel[None].float(), preprocessor, n_iters)[0]  # (S,)


def token_word_times(
    tokens: Tensor, durations: Tensor, tokenizer, pace: float, frame_seconds: float
) -> list:
    """[[word, start, end], ...] in seconds from token durations (U,): a word is a
    run of tokens between spaces; it starts where its first character's frames
    start and ends where its last one's end, with each token repeated
    floor(duration / pace + 0.5) times as the length regulator repeats it."""
    frames = torch.floor(durations.double() / pace + 0.5)  # (U,)
    ends = torch.cumsum(frames, 0)  # (U,)
    words, current = [], None
    for k, token in enumerate(tokens.tolist()):
        if token == tokenizer.space or token == tokenizer.pad:
            current = None
            continue
        char = tokenizer.id_to_char(token)
        if current is None:
            current = [char, float(ends[k] - frames[k]), float(ends[k])]
            words.append(current)
        else:
            current[0] += char
            current[2] = float(ends[k])
    return [[w, s * frame_seconds, e * frame_seconds] for w, s, e in words]


def word_duration_error(predicted: list, reference: list) -> float:
    """Mean over words of |predicted duration - reference duration| / reference
    duration; both [[word, start, end], ...] of the same words in order."""
    if len(predicted) != len(reference):
        raise ValueError(
            f"{len(predicted)} predicted words but {len(reference)} reference words"
        )
    errors = [
        abs((pe - ps) - (re - rs)) / max(re - rs, 1e-3)
        for (_, ps, pe), (_, rs, re) in zip(predicted, reference)
    ]
    return sum(errors) / len(errors)
