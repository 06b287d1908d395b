"""Text, audio, pitch and alignment prior: FastPitch training data (NeMo TTSDataset).

One manifest row per utterance (`audio_filepath`, `text`, `duration`, optional
`speaker`). For each row the dataset holds
  - the tokens of `text` (the model's tokenizer; a character it lacks is reported as
    manifest:line before any work starts),
  - the waveform (decoded once and, unless `cache_audio: false`, kept in memory:
    the TTS voice is 17 minutes, 63 MB),
  - the frame-level pitch from YIN (minispeech/audio/pitch.py) with the model's hop and
    threshold 0.15 (the paper's 0.1 calls only 46% of the TTS voice's frames
    voiced, pyin about 80%), one value per mel frame (T = S // hop + 1, the frames
    the centred STFT gives), then
    normalised per speaker: (f0 - mean) / std over that speaker's voiced frames in
    this manifest, unvoiced frames kept at 0 (NeMo normalises with fixed statistics
    of the training set; per speaker is what its multi-speaker recipes do),
  - the static beta-binomial alignment prior (T, U) of Badlani et al. 2022, Eq. 6
    (minispeech/tts/aligner.py).
Pitch and priors are computed when the dataset is built (about a second per minute of
audio), so every epoch reads them from memory.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import torch

from minispeech.audio.pitch import yin
from minispeech.data import AudioTextDataset
from minispeech.data.datasets import DATASET_KEYS
from minispeech.tts.aligner import beta_binomial_prior

# a train_ds / validation_ds / test_ds section: the generic keys but augmentation
# (pitch is computed once, from the clean audio) and the TTS ones
TTS_DATASET_KEYS = tuple(k for k in DATASET_KEYS if k != "augmentor")
TTS_DATASET_KEYS += (
    "pitch_fmin",
    "pitch_fmax",
    "pitch_threshold",
    "prior_scaling_factor",
    "rows",
)


class TTSDataset(torch.utils.data.Dataset):
    """`dataset[i] -> {"audio": (S,), "tokens": (U,), "pitch": (T,), "prior": (T, U),
    "speaker": str, "id": str}`."""

    def __init__(
        self,
        manifest,
        tokenizer,
        sample_rate: int,
        hop_length: int,
        win_length: int,
        min_duration: float | None = None,
        max_duration: float | None = None,
        pitch_fmin: float = 65.0,
        pitch_fmax: float = 400.0,
        prior_scaling_factor: float = 1.0,
        pitch_threshold: float = 0.15,
        rows: Sequence[int | None] | None = None,
        cache_audio: bool = True,
    ):
        self.audio = AudioTextDataset(
            manifest,
            tokenizer=tokenizer,
            sample_rate=sample_rate,
            min_duration=min_duration,
            max_duration=max_duration,
            cache_audio=True,
            rows=rows,
        )
        self.hop_length = hop_length
        waves = [self.audio[k]["audio"] for k in range(len(self.audio))]  # [(S,)]
        raw = [
            yin(
                w,
                sample_rate,
                pitch_fmin,
                pitch_fmax,
                win_length,
                hop_length,
                threshold=pitch_threshold,
            )
            for w in waves
        ]  # [(T,)] Hz, 0 = unvoiced
        if not cache_audio:  # pitch is done: decode again on each read instead
            self.audio.cache = None
        self.speakers = [str(row.get("speaker", "")) for row in self.audio.rows]
        self.pitch = normalize_pitch(raw, self.speakers)
        self.prior_scaling_factor = prior_scaling_factor

    @property
    def durations(self) -> list[float]:
        return self.audio.durations

    def __len__(self) -> int:
        return len(self.audio)

    def __getitem__(self, index: int) -> dict:
        item = self.audio[index]
        tokens = item["tokens"]  # (U,)
        pitch = self.pitch[index]  # (T,)
        prior = beta_binomial_prior(
            len(tokens), len(pitch), self.prior_scaling_factor
        )  # (T, U)
        return {
            "audio": item["audio"],
            "tokens": tokens,
            "pitch": pitch,
            "prior": prior,
            "speaker": self.speakers[index],
            "words": self.audio.rows[index].get("words"),
            "id": item["id"],
        }


def normalize_pitch(
    pitches: Sequence[torch.Tensor], speakers: Sequence[str]
) -> list[torch.Tensor]:
    """(f0 - mean) / std with each speaker's mean and std over its voiced frames;
    unvoiced frames (0) stay 0."""
    voiced = defaultdict(list)
    for f0, speaker in zip(pitches, speakers):
        voiced[speaker].append(f0[f0 > 0])
    stats = {}
    for speaker, parts in voiced.items():
        values = torch.cat(parts).double()
        # fewer than 2 voiced frames: nothing to normalise (no voiced pitch to scale)
        enough = values.numel() >= 2
        stats[speaker] = (
            (values.mean().item(), values.std().item()) if enough else (0.0, 1.0)
        )
    out = []
    for f0, speaker in zip(pitches, speakers):
        mean, std = stats[speaker]
        out.append(torch.where(f0 > 0, (f0 - mean) / max(std, 1e-3), 0.0).float())
    return out


def build_tts_dataset(ds_cfg: dict, model_cfg: dict) -> TTSDataset:
    """A TTSDataset from one `train_ds`/`validation_ds` section and the model's
    config (sample rate, the preprocessor's hop and window, the tokenizer)."""
    from minispeech.tts.tokenizer import EnglishCharsTokenizer

    pre = model_cfg.get("preprocessor") or {}
    sample_rate = int(model_cfg.get("sample_rate", pre.get("sample_rate", 16000)))
    hop, win = frame_sizes(pre, sample_rate)
    tokenizer_cfg = dict(model_cfg.get("tokenizer") or {})
    tokenizer_cfg.pop("_target_", None)
    return TTSDataset(
        ds_cfg["manifest_filepath"],
        EnglishCharsTokenizer(**tokenizer_cfg),
        sample_rate,
        hop,
        win,
        min_duration=ds_cfg.get("min_duration"),
        max_duration=ds_cfg.get("max_duration"),
        pitch_fmin=ds_cfg.get("pitch_fmin", 65.0),
        pitch_fmax=ds_cfg.get("pitch_fmax", 400.0),
        prior_scaling_factor=ds_cfg.get("prior_scaling_factor", 1.0),
        pitch_threshold=ds_cfg.get("pitch_threshold", 0.15),
        rows=ds_cfg.get("rows"),
        cache_audio=ds_cfg.get("cache_audio", True),
    )


def frame_sizes(pre: dict, sample_rate: int) -> tuple[int, int]:
    """(hop, window) in samples from a preprocessor section (seconds or samples)."""
    hop = pre.get("n_window_stride") or int(
        pre.get("window_stride", 0.01) * sample_rate
    )
    win = pre.get("n_window_size") or int(pre.get("window_size", 0.02) * sample_rate)
    return int(hop), int(win)


def collate_tts(items: Sequence[dict], pad_id: int) -> dict:
    """-> {"audio": (B, S), "audio_lens": (B,), "text": (B, U) padded with
    `pad_id`, "text_lens": (B,), "pitch": (B, T), "attn_prior": (B, T, U),
    "speakers", "words" (the rows' word timings or None), "ids"}; T is the
    longest item's S // hop + 1, zero padding."""
    if not items:
        raise ValueError("cannot collate an empty batch")
    audio_lens = torch.tensor([it["audio"].numel() for it in items])  # (B,)
    text_lens = torch.tensor([it["tokens"].numel() for it in items])  # (B,)
    n_frames = max(it["pitch"].numel() for it in items)
    B, S, U = len(items), int(audio_lens.max()), int(text_lens.max())
    audio = torch.zeros(B, S)
    text = torch.full((B, U), pad_id, dtype=torch.long)
    pitch = torch.zeros(B, n_frames)
    prior = torch.zeros(B, n_frames, U)
    for b, it in enumerate(items):
        audio[b, : audio_lens[b]] = it["audio"]
        text[b, : text_lens[b]] = it["tokens"]
        pitch[b, : it["pitch"].numel()] = it["pitch"]
        t, u = it["prior"].shape
        prior[b, :t, :u] = it["prior"]
    return {
        "audio": audio,
        "audio_lens": audio_lens,
        "text": text,
        "text_lens": text_lens,
        "pitch": pitch,
        "attn_prior": prior,
        "speakers": [it["speaker"] for it in items],
        "words": [it.get("words") for it in items],
        "ids": [it["id"] for it in items],
    }
