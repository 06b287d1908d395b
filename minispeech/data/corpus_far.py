"""The far split: clean or noisy speech from voices far from the training speakers.

A third of the far utterances stay clean; the others get white, pink or babble noise at
10 or 20 dB SNR, scaled exactly with `minispeech.audio.noise.scale_to_snr`
(SNR = 10 log10(P_speech / P_noise) over the whole trimmed utterance). Babble is the
sum of 4 other far utterances of other speakers (`babble_noise`). The condition cycles
over utterances: clean, clean, clean, white 10, white 20, pink 10, pink 20, babble 10,
babble 20 (shifted by the speaker's index so every speaker gets every condition). If
speech plus noise would clip, both are scaled down together (the SNR is unchanged).
Noise is drawn from a generator seeded by the seed and the utterance id: reproducible.

`far_like_plan` makes a set of the same make for tuning on dev data only: dev's
own unseen variants (never trained on, never in test or far) at far's extreme
pitches and rates, reading dev sentences, mixed by `write_far` with far's conditions.
"""

import random
import zlib
from pathlib import Path

import numpy as np

from minispeech.audio.noise import babble_noise, pink_noise, scale_to_snr, white_noise
from minispeech.data.corpus_audio import manifest_row, write_opus
from minispeech.data.corpus_speakers import DEV_UNSEEN, FEMALE, Speaker

CONDITIONS = (
    ("clean", None), ("clean", None), ("clean", None),
    ("white", 10.0), ("white", 20.0), ("pink", 10.0), ("pink", 20.0),
    ("babble", 10.0), ("babble", 20.0),
)  # fmt: skip
N_BABBLE = 4  # other utterances summed into babble
PEAK = 0.99  # largest sample after mixing


def make_noise(kind: str, n: int, rng: np.random.Generator, others: list) -> np.ndarray:
    """Unscaled noise of `kind` (white, pink, babble), (S,)."""
    if kind == "white":
        return white_noise(n, rng)
    if kind == "pink":
        return pink_noise(n, rng)
    if kind == "babble":
        return babble_noise(others, n, rng)
    raise ValueError(f"unknown noise {kind!r}: white, pink or babble")


def mix(wave: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """wave + noise scaled to `snr_db`, both scaled down together if it would clip."""
    noisy = wave.astype(np.float64) + scale_to_snr(wave, noise, snr_db)  # (S,)
    peak = np.abs(noisy).max()
    if peak > PEAK:
        noisy *= PEAK / peak
    return noisy.astype(np.float32)


def write_far(
    out_dir: Path, plan: list, clean: list, seed: int, opus_level=None
) -> list[dict]:
    """Write the far utterances (`plan`; `clean`: [(wave, words)]); rows in order."""
    speaker_index = {s.id: k for k, s in enumerate(dict.fromkeys(p[0] for p in plan))}
    rows = []
    for (speaker, utt_id, text, kind), (wave, words) in zip(plan, clean):
        shift = speaker_index[speaker.id]
        noise, snr = CONDITIONS[(int(utt_id.rsplit("_", 1)[1]) + shift) % 9]
        rng = np.random.default_rng([seed, zlib.crc32(utt_id.encode())])
        if noise != "clean":
            others = [k for k, p in enumerate(plan) if p[0].id != speaker.id]
            picks = rng.choice(others, size=min(N_BABBLE, len(others)), replace=False)
            babble = [clean[k][0] for k in sorted(picks)]
            wave = mix(wave, make_noise(noise, len(wave), rng, babble), snr)
        relative = f"audio/{speaker.id}/{utt_id}.opus"
        write_opus(out_dir, relative, wave, utt_id, opus_level)
        row = manifest_row(relative, wave, text, speaker, kind, words)
        words = row.pop("words")
        rows.append({**row, "noise": noise, "snr_db": snr, "words": words})
    return rows


def far_like_plan(texts: list[str], per_speaker: int, seed: int) -> list[tuple]:
    """(speaker, utterance id, text, kind) of a far-like dev set: each of dev's
    unseen variants at pitch 12 and 88, one slow (120-130 wpm) and one fast
    (220-240), accents en-GB-x-rp and en-US, ids f901/m901 up (no corpus id)."""
    rng = random.Random(f"far-like-{seed}")
    plan, counts = [], {"f": 900, "m": 900}
    for k, variant in enumerate(DEV_UNSEEN):
        for j, pitch in enumerate((12, 88)):
            prefix = "f" if variant in FEMALE else "m"
            counts[prefix] += 1
            slow = (k // 2 + j) % 2 == 0
            rate = rng.randrange(120, 131, 5) if slow else rng.randrange(220, 241, 5)
            accent = ("en-GB-x-rp", "en-US")[(k + j) % 2]
            pitch_range = rng.randrange(20, 81, 5)
            speaker = Speaker(
                f"{prefix}{counts[prefix]}", "far", variant, pitch, pitch_range, rate,
                accent,
            )  # fmt: skip
            for u, text in enumerate(rng.sample(texts, per_speaker)):
                plan.append((speaker, f"{speaker.id}_{u:03d}", text, "template"))
    return plan
