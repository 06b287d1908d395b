"""Data sets derived on the fly from a seed: noisy speech, conversations, trial lists.

Nothing here is committed: each function rebuilds the same set from the same rows and
seed, so enhancement, diarization and speaker-verification recipes train on the bundled
corpus without extra downloads.

- Noise at an exact SNR: SNR = 10 log10(sum clean^2 / sum noise^2) (dB); the noise is
  scaled by sqrt(P_clean / (P_noise 10^(SNR/10))). White noise is Gaussian; pink noise
  (power spectral density ~ 1/f) is made by FFT shaping: the Fourier coefficients of
  white Gaussian noise are multiplied by f^(-1/2), the method of J. Timmer and
  M. Koenig, "On generating power law noise", A&A 300:707 (1995), with beta = 1.
  Babble is the sum of other utterances, each at equal power.
- Conversations: silence-trimmed utterances of 2-3 speakers placed turn by turn with a
  gap drawn from an interval that includes negative values (overlap). The reference
  segments are written as RTTM, the format of NIST's Rich Transcription evaluations
  (RT-09 evaluation plan, appendix A; read by md-eval and pyannote):
  `SPEAKER <file> 1 <onset> <duration> <NA> <NA> <speaker> <NA> <NA>`.
- Verification trials: "label enrollment test" lines as in VoxCeleb1's veri_test.txt,
  half target (same speaker) and half non-target pairs.
"""

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf


def _power(x: np.ndarray) -> float:
    return float(np.mean(np.asarray(x, dtype=np.float64) ** 2))


def snr_db(clean: np.ndarray, noise: np.ndarray) -> float:
    """10 log10(P_clean / P_noise) in dB."""
    return 10.0 * np.log10(_power(clean) / _power(noise))


def scale_to_snr(clean: np.ndarray, noise: np.ndarray, target_db: float) -> np.ndarray:
    """`noise` rescaled so that snr_db(clean, result) == target_db."""
    if _power(noise) == 0.0:
        raise ValueError("cannot scale silent noise to an SNR")
    gain = np.sqrt(_power(clean) / (_power(noise) * 10.0 ** (target_db / 10.0)))
    return (np.asarray(noise, dtype=np.float64) * gain).astype(np.float32)


def white_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian white noise, unit variance, (S,)."""
    return rng.standard_normal(n).astype(np.float32)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """1/f noise by FFT shaping (Timmer & Koenig 1995, beta = 1), unit power, (S,)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))  # (S/2+1,)
    freqs = np.fft.rfftfreq(n)
    freqs[0] = freqs[1] if n > 1 else 1.0  # no infinite DC gain
    pink = np.fft.irfft(spectrum / np.sqrt(freqs), n=n)  # power ~ 1/f
    return (pink / pink.std()).astype(np.float32)


def babble_noise(waves: list, n: int, rng: np.random.Generator) -> np.ndarray:
    """Sum of `waves`, each looped to n samples from a random offset and set to unit
    power, (S,)."""
    total = np.zeros(n, dtype=np.float64)
    for wave in waves:
        start = int(rng.integers(len(wave)))
        looped = np.resize(np.roll(wave, -start), n)
        total += looped / np.sqrt(_power(looped) + 1e-20)
    return total.astype(np.float32)


def read_wave(path) -> np.ndarray:
    wave, _ = sf.read(str(path), dtype="float32", always_2d=False)
    return wave


@dataclass(frozen=True)
class NoisyExample:
    """One clean utterance with added noise at an exact SNR."""

    id: str  # the clean utterance's file name stem
    clean: np.ndarray  # (S,) float32
    noisy: np.ndarray  # (S,) clean + noise
    kind: str  # "white", "pink" or "babble"
    snr_db: float  # the target SNR, reached to float32 precision


def noisy_examples(
    rows: list[dict],
    seed: int,
    snr_range=(0.0, 10.0),
    kinds=("white", "pink", "babble"),
    n_babble: int = 5,
) -> list:
    """A NoisyExample for every row (absolute `audio_filepath`), kind and SNR drawn
    from `seed`. Babble sums `n_babble` other utterances of the same rows."""
    rng = np.random.default_rng(seed)
    out = []
    for i, row in enumerate(rows):
        clean = read_wave(row["audio_filepath"])
        kind = kinds[int(rng.integers(len(kinds)))]
        target = float(rng.uniform(*snr_range))
        if kind == "white":
            noise = white_noise(len(clean), rng)
        elif kind == "pink":
            noise = pink_noise(len(clean), rng)
        else:
            others = [j for j in range(len(rows)) if j != i]
            picks = rng.choice(others, size=min(n_babble, len(others)), replace=False)
            noise = babble_noise(
                [read_wave(rows[j]["audio_filepath"]) for j in picks], len(clean), rng
            )
        noise = scale_to_snr(clean, noise, target)
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
    texts, noise of a kind and SNR drawn per utterance from `seed`.
    Returns the manifest.
    """
    from minispeech.data.manifest import read_manifest, write_manifest

    rows = read_manifest(manifest)
    out_dir = Path(out_dir)
    (out_dir / "audio").mkdir(parents=True, exist_ok=True)
    out_rows = []
    for row, example in zip(rows, noisy_examples(rows, seed, snr_range, kinds)):
        path = out_dir / "audio" / f"{example.id}.wav"
        info = sf.info(row["audio_filepath"])
        sf.write(
            path, np.clip(example.noisy, -1.0, 1.0), info.samplerate, subtype="PCM_16"
        )
        out_rows.append(
            {
                **row,
                "audio_filepath": str(path),
                "noise": example.kind,
                "snr_db": round(example.snr_db, 2),
            }
        )
    write_manifest(out_dir / "noisy.jsonl", out_rows, relative_to=out_dir)
    return out_dir / "noisy.jsonl"


@dataclass(frozen=True)
class Segment:
    """One speaker turn of a conversation, in seconds."""

    start: float
    duration: float
    speaker: str


def make_conversation(
    turns: list[tuple[np.ndarray, str]],
    rng: random.Random,
    gap_range=(-0.4, 0.8),
    sample_rate: int = 16000,
):
    """Place (wave, speaker) turns one after another with random gaps; a negative
    gap overlaps the previous turn (never by more than half of it).

    Returns the mixed wave (S,) and one Segment per turn (its exact extent)."""
    starts, end = [], 0  # end: where the latest turn so far stops
    for k, (wave, _) in enumerate(turns):
        start = 0
        if k > 0:
            gap = int(round(rng.uniform(*gap_range) * sample_rate))
            gap = max(gap, -len(turns[k - 1][0]) // 2)
            start = max(starts[-1] + 1, end + gap)
        starts.append(start)
        end = max(end, start + len(wave))
    mix = np.zeros(max(s + len(w) for s, (w, _) in zip(starts, turns)), np.float32)
    segments = []
    for start, (wave, speaker) in zip(starts, turns):
        mix[start : start + len(wave)] += wave
        segments.append(Segment(start / sample_rate, len(wave) / sample_rate, speaker))
    return mix, segments


def conversations(
    rows: list[dict],
    n_recordings: int,
    seed: int,
    n_speakers=(2, 3),
    n_turns=(8, 12),
    gap_range=(-0.4, 0.8),
) -> list:
    """`n_recordings` conversations from `rows` (absolute paths, a `speaker` field):
    list of (recording id, wave (S,), [Segment, ...]). No speaker talks twice in a
    row, so every overlap is between two different speakers."""
    rng = random.Random(seed)
    by_speaker: dict[str, list[dict]] = {}
    for row in rows:
        by_speaker.setdefault(row["speaker"], []).append(row)
    names = sorted(by_speaker)
    out = []
    for r in range(n_recordings):
        chosen = rng.sample(names, rng.randint(*n_speakers))
        order, previous = [], None
        for _ in range(rng.randint(*n_turns)):
            previous = rng.choice([s for s in chosen if s != previous])
            order.append(previous)
        paths = [rng.choice(by_speaker[s])["audio_filepath"] for s in order]
        turns = [(read_wave(path), s) for path, s in zip(paths, order)]
        wave, segments = make_conversation(turns, rng, gap_range)
        out.append((f"conv{r:03d}", wave, segments))
    return out


def rttm_lines(recording: str, segments: list[Segment]) -> list[str]:
    """RTTM SPEAKER lines (NIST RT-09 format), times with millisecond precision."""
    return [
        f"SPEAKER {recording} 1 {s.start:.3f} {s.duration:.3f} <NA> <NA> {s.speaker}"
        " <NA> <NA>"
        for s in segments
    ]


def write_rttm(path, recording: str, segments: list[Segment]) -> None:
    Path(path).write_text("\n".join(rttm_lines(recording, segments)) + "\n")


def read_rttm(path) -> dict[str, list[Segment]]:
    """{recording: [Segment, ...]} from an RTTM file; errors name the line."""
    out: dict[str, list[Segment]] = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 8 or fields[0] != "SPEAKER":
            raise ValueError(f"{path}:{number}: not an RTTM SPEAKER line: {line!r}")
        segment = Segment(float(fields[3]), float(fields[4]), fields[7])
        out.setdefault(fields[1], []).append(segment)
    return out


def verification_trials(rows: list[dict], n_trials: int, seed: int) -> list:
    """(label, enrollment path, test path) triples: n_trials // 2 target pairs (same
    speaker, two different utterances) and as many non-target pairs, shuffled."""
    rng = random.Random(seed)
    by_speaker: dict[str, list[str]] = {}
    for row in rows:
        by_speaker.setdefault(row["speaker"], []).append(row["audio_filepath"])
    names = sorted(s for s in by_speaker)
    if len(names) < 2 or max(len(v) for v in by_speaker.values()) < 2:
        raise ValueError("trials need >= 2 speakers and one with >= 2 utterances")
    multi = [s for s in names if len(by_speaker[s]) >= 2]
    trials = []
    for _ in range(n_trials // 2):
        a, b = rng.sample(by_speaker[rng.choice(multi)], 2)
        trials.append((1, a, b))
        s, t = rng.sample(names, 2)
        trials.append((0, rng.choice(by_speaker[s]), rng.choice(by_speaker[t])))
    rng.shuffle(trials)
    return trials


def write_trials(path, trials: list) -> None:
    """One "label enrollment test" line per trial (VoxCeleb1 veri_test.txt style)."""
    Path(path).write_text("".join(f"{label} {a} {b}\n" for label, a, b in trials))
