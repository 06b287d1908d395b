"""Noisy/clean pairs made from clean speech and a seed (enhancement data, noisy tests).

Each clean utterance gets noise of a kind drawn from `kinds` (any of NOISE_KINDS:
white, pink, brown, babble, modulated, bursts, hum; minispeech/audio/noise.py) at an
SNR drawn from `snr_range`, scaled exactly over the clean utterance's samples:
noisy = clean + g * noise with 10 log10(sum clean^2 / sum (g noise)^2) = SNR. Babble
sums utterances of other speakers of the same rows (other utterances when the rows
name no speaker, or all one), so held-out speakers stay held out. Nothing is stored:
the same rows and seed give the same pairs. `write_noisy_copy` keeps them as files, and
`read_pair_rows` reads such audio-to-audio manifests back (NeMo's `noisy_filepath`
and `clean_filepath` fields), refusing a pair whose two files differ in length.
"""

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from minispeech.audio.io import AudioError, audio_info, load_audio
from minispeech.audio.noise import NOISE_KINDS, make_noise, scale_to_snr
from minispeech.data.manifest import (
    ManifestError,
    read_manifest,
    read_numbered_manifest,
    write_manifest,
)


@dataclass(frozen=True)
class NoisyExample:
    """One clean utterance with added noise at an exact SNR."""

    id: str  # the clean utterance's file name stem
    clean: np.ndarray  # (S,) float32
    noisy: np.ndarray  # (S,) clean + noise
    kind: str  # one of NOISE_KINDS
    snr_db: float  # the target SNR, reached to float32 precision


def check_kinds(kinds, where: str = "noise kinds") -> list[str]:
    """`kinds` as a list, each one of NOISE_KINDS, at least one."""
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    unknown = [kind for kind in kinds if kind not in NOISE_KINDS]
    if unknown or not kinds:
        raise ValueError(
            f"{where}: {unknown or 'none given'}; use some of {', '.join(NOISE_KINDS)}"
        )
    return kinds


def speaker_keys(rows: list[dict]) -> list[str]:
    """Each row's speaker (`speaker`, else NeMo's `label`); a row without one is a
    speaker of its own."""
    keys = []
    for i, row in enumerate(rows):
        speaker = row.get("speaker", row.get("label"))
        keys.append(f"#row{i}" if speaker is None else str(speaker))
    return keys


def speaker_groups(keys: list[str]) -> dict[str, list[int]]:
    """speaker -> the indices of its rows, speakers in first-seen order."""
    groups: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    return groups


def pick_babble(
    groups: dict[str, list[int]], speaker: str, n: int, rng: np.random.Generator
) -> list[int]:
    """Indices of one random utterance of each of min(n, available) random speakers
    other than `speaker`."""
    others = [key for key in groups if key != speaker]
    if not others:
        raise ValueError(
            f"babble needs other speakers than {speaker!r}; there are none"
        )
    chosen = rng.choice(len(others), size=min(n, len(others)), replace=False)
    picks = []
    for c in chosen:
        members = groups[others[int(c)]]
        picks.append(members[int(rng.integers(len(members)))])
    return picks


def scaled_noise(
    clean: np.ndarray,
    kind: str,
    target_db: float,
    rng: np.random.Generator,
    sample_rate: int,
    waves=(),
) -> np.ndarray:
    """Noise of `kind` as long as clean (S,), scaled so that snr_db(clean, noise) is
    exactly `target_db`; babble sums `waves`."""
    noise = make_noise(kind, len(clean), rng, sample_rate, waves)  # (S,) unit power
    return scale_to_snr(clean, noise, target_db)


def noisy_examples(
    rows: list[dict],
    seed: int,
    snr_range=(0.0, 10.0),
    kinds=("white", "pink", "babble"),
    n_babble: int = 5,
) -> list:
    """A NoisyExample for every row (absolute `audio_filepath`), kind and SNR drawn
    from `seed`. Babble sums `n_babble` utterances of other speakers of the rows
    (other utterances when all rows are of one speaker)."""
    kinds = check_kinds(kinds)
    rng = np.random.default_rng(seed)
    keys = speaker_keys(rows)
    if len(set(keys)) < 2:  # one speaker: each utterance stands for a talker
        keys = [f"#row{i}" for i in range(len(rows))]
    groups = speaker_groups(keys)
    out = []
    for i, row in enumerate(rows):
        clean, sample_rate = load_audio(row["audio_filepath"])
        clean = clean.numpy()  # (S,)
        kind = kinds[int(rng.integers(len(kinds)))]
        target = float(rng.uniform(*snr_range))
        waves = []
        if kind == "babble":
            picks = pick_babble(groups, keys[i], n_babble, rng)
            waves = [load_audio(rows[j]["audio_filepath"])[0].numpy() for j in picks]
        noise = scaled_noise(clean, kind, target, rng, sample_rate, waves)
        stem = Path(row["audio_filepath"]).stem
        out.append(NoisyExample(stem, clean, clean + noise, kind, target))
    return out


def write_noisy_copy(
    manifest,
    out_dir,
    seed: int = 0,
    snr_range=(10.0, 10.0),
    kinds=("white", "pink", "babble"),
) -> Path:
    """A noisy copy of a manifest: 16-bit WAVs and `noisy.jsonl` in `out_dir`, the same
    texts, noise of a kind and SNR drawn per utterance from `seed`. Each line also
    names its pair for enhancement (NeMo's audio-to-audio fields): `noisy_filepath`
    (the new WAV, as `audio_filepath`) and `clean_filepath` (the original), relative
    to `out_dir`. Samples beyond [-1, 1] are clipped, with a note that counts them.
    Returns the manifest.
    """
    rows = read_manifest(manifest)
    out_dir = Path(out_dir)
    (out_dir / "audio").mkdir(parents=True, exist_ok=True)
    out_rows, n_clipped = [], 0
    for row, example in zip(rows, noisy_examples(rows, seed, snr_range, kinds)):
        path = out_dir / "audio" / f"{example.id}.wav"
        info = sf.info(row["audio_filepath"])
        n_clipped += int((np.abs(example.noisy) > 1.0).sum())
        sf.write(
            path, np.clip(example.noisy, -1.0, 1.0), info.samplerate, subtype="PCM_16"
        )
        out_rows.append(
            {
                **row,
                "audio_filepath": str(path),
                "noisy_filepath": _relative(path, out_dir),
                "clean_filepath": _relative(row["audio_filepath"], out_dir),
                "noise": example.kind,
                "snr_db": round(example.snr_db, 2),
            }
        )
    if n_clipped:
        print(f"note: {n_clipped} noisy samples beyond [-1, 1] were clipped")
    write_manifest(out_dir / "noisy.jsonl", out_rows, relative_to=out_dir)
    return out_dir / "noisy.jsonl"


def _relative(path, folder) -> str:
    """`path` relative to `folder`, with forward slashes (as write_manifest writes)."""
    return Path(
        os.path.relpath(os.path.abspath(path), os.path.abspath(folder))
    ).as_posix()


def read_pair_rows(manifest, input_key: str, target_key: str):
    """Rows of an audio-to-audio manifest -> (rows, places): both paths resolved
    against the manifest's folder, both files readable, durations equal within one
    sample; `duration` is the target's. Every problem is listed together."""
    numbered = read_numbered_manifest(manifest, (input_key, target_key), False)
    folder = Path(manifest).absolute().parent
    rows, places, problems = [], [], []
    for line, row in numbered:
        place = f"{manifest}:{line}"
        try:
            row = _pair_row(row, folder, input_key, target_key)
        except ValueError as err:
            problems.append(f"{place}: {err}")
            continue
        rows.append(row)
        places.append(place)
    if problems:
        raise ManifestError(problems)
    return rows, places


def _pair_row(row: dict, folder: Path, input_key: str, target_key: str) -> dict:
    """One pair row with absolute paths and the target's duration, or ValueError."""
    infos = {}
    for key in (input_key, target_key):
        if not isinstance(row[key], str) or not row[key].strip():
            raise ValueError(f"{key}: must be a path, got {row[key]!r}")
        row = {**row, key: os.path.normpath(folder / os.path.expanduser(row[key]))}
        try:
            infos[key] = audio_info(row[key])
        except AudioError as err:
            raise ValueError(f"{key}: {err}") from None
    noisy, clean = infos[input_key], infos[target_key]
    tolerance = 1.0 / min(noisy.sample_rate, clean.sample_rate)  # one sample
    if abs(noisy.duration - clean.duration) > tolerance + 1e-9:
        raise ValueError(
            f"{input_key} lasts {noisy.duration:.4f} s ({noisy.num_frames} samples "
            f"at {noisy.sample_rate} Hz) but {target_key} {clean.duration:.4f} s "
            f"({clean.num_frames} at {clean.sample_rate} Hz): a pair must be aligned "
            "sample for sample"
        )
    return {**row, "duration": clean.duration}
