"""Voice activity detection: an energy baseline, NeMo's post-processing of frame
scores into speech segments, and frame labels / frame F1 to score either.

Frames: frame t stands for time t * frame_s (its centre, as a centred STFT frame),
and a run of speech frames a..b-1 is the segment [a * frame_s, b * frame_s). A
recording of S samples has T = S // hop frames (hop = frame_s * sample_rate), the
valid frames of MelSpectrogram, so energy scores and VADModel scores line up.

1. Energy baseline (`energy_frame_probs`): the log energy of each 25 ms window,
   E_t = 10 log10(mean x^2) dB, clipped 80 dB below its maximum and averaged over
   15 frames (in dB: it steadies the noise floor and smears speech into silence
   less than an average of powers would), is compared with a threshold set by the
   recording itself: a noise floor (the 10th percentile of E: the quietest 10% of
   frames are taken to be non-speech) plus a margin, the larger of `margin_db` and
   `margin_fraction` of the floor-to-peak range (peak: the 99th percentile), and no
   lower than peak - range_db. score_t = sigmoid((E_t - threshold) / slope_db), so
   0.5 is the threshold. It needs some non-speech in the recording to find the
   floor; on speech only, the quietest speech frames are called silence. The
   defaults were tuned on dev sessions (clean, white and pink noise at 10-20 dB
   SNR; vad_dataset.py): frame F1 0.99 clean, 0.97 at 10 dB.
2. Post-processing (`speech_segments`), NeMo's nemo/collections/asr/parts/utils/
   vad_utils.py `binarization` then `filtering` (after pyannote.audio's
   utils/signal.py; Gelly & Gauvain 2015, "Minimum Word Error Training of RNN-based
   Voice Activity Detection", Interspeech):
   a. binarization, hysteresis: a segment starts at the first frame whose score is
      > onset and ends at the first later frame whose score is < offset;
   b. each segment becomes [start - pad_onset, end + pad_offset] (start clipped at
      0; a segment that a negative pad empties is dropped), and overlapping or
      touching segments are merged;
   c. filtering (NeMo's default filter_speech_first=True): speech segments shorter
      than min_duration_on are removed, then gaps between the remaining segments
      shorter than min_duration_off are filled (with filter_speech_first=False:
      gaps first, then short speech).
   Differs from NeMo: a segment still open at the end ends at T * frame_s, the end
   of the last frame (NeMo's loop writes (T - 1) * frame_s), and every end is
   clipped at T * frame_s (NeMo lets pad_offset run past the recording); times are
   compared with 1 ns of slack (EPS) against float rounding. NeMo's
   docstrings swap the two min_duration descriptions; the code, followed here,
   drops short speech with min_duration_on and fills short gaps with min_duration_off.
3. Scoring: `frame_labels` turns segments back into 0/1 frames (frame t is speech
   when start <= t * frame_s < end) and `frame_f1` gives precision, recall and F1
   of the speech class over frames.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# seconds: times are compared with this slack, so that float rounding never splits
# touching segments or makes a 10-frame segment (0.1 s at 10 ms) shorter than 0.1 s
EPS = 1e-9


def frame_log_energy(
    wave: Tensor, sample_rate: int = 16000, frame_s: float = 0.01, win_s: float = 0.025
) -> Tensor:
    """wave (S,) -> E (T,) in dB, T = S // hop: 10 log10 of the mean power of the
    `win_s` window centred on each frame (zero-padded at both ends)."""
    assert wave.dim() == 1, f"wave must be (S,), got {tuple(wave.shape)}"
    hop, win = round(frame_s * sample_rate), round(win_s * sample_rate)
    n_frames = wave.numel() // hop
    x = F.pad(wave.double(), (win // 2, win // 2))  # centred windows
    power = x.unfold(0, win, hop)[:n_frames].pow(2).mean(1)  # (T,)
    return 10 * torch.log10(power + 1e-30)  # (T,) dB; digital silence: -300 dB


def smooth_energy(
    energy_db: Tensor, smooth_frames: int = 15, dynamic_range_db: float = 80.0
) -> Tensor:
    """E (T,) dB -> E (T,): clipped at max(E) - dynamic_range_db (so digital
    silence weighs as a quiet background, not as -300 dB), then a moving average
    over `smooth_frames` frames ('same' length, edges repeated)."""
    energy = energy_db.clamp_min(float(energy_db.max()) - dynamic_range_db)
    if smooth_frames <= 1:
        return energy
    kernel = torch.ones(1, 1, smooth_frames, dtype=energy.dtype) / smooth_frames
    padded = F.pad(energy[None, None], (smooth_frames // 2,) * 2, mode="replicate")
    return F.conv1d(padded, kernel)[0, 0, : energy.numel()]  # (T,)


def energy_threshold(
    energy_db: Tensor,
    floor_percentile: float = 10.0,
    peak_percentile: float = 99.0,
    margin_db: float = 3.0,
    margin_fraction: float = 0.25,
    range_db: float = 45.0,
) -> float:
    """The speech threshold of one recording's energies (T,) in dB: noise floor +
    max(margin_db, margin_fraction * (peak - floor)), and at least peak - range_db
    (in digital silence the floor is far below any real background)."""
    floor = float(torch.quantile(energy_db, floor_percentile / 100))
    peak = float(torch.quantile(energy_db, peak_percentile / 100))
    level = floor + max(margin_db, margin_fraction * (peak - floor))
    return max(level, peak - range_db)


def energy_frame_probs(
    wave: Tensor,
    sample_rate: int = 16000,
    frame_s: float = 0.01,
    smooth_frames: int = 15,
    floor_percentile: float = 10.0,
    margin_db: float = 3.0,
    margin_fraction: float = 0.25,
    slope_db: float = 2.0,
) -> Tensor:
    """wave (S,) -> speech score (T,) in [0, 1], one per `frame_s`: sigmoid of the
    smoothed frame energy above the recording's threshold, in units of `slope_db`
    (the other options: smooth_energy and energy_threshold)."""
    energy = frame_log_energy(wave, sample_rate, frame_s)  # (T,)
    if energy.numel() == 0:
        return torch.zeros(0)
    energy = smooth_energy(energy, smooth_frames)  # (T,)
    level = energy_threshold(
        energy,
        floor_percentile=floor_percentile,
        margin_db=margin_db,
        margin_fraction=margin_fraction,
    )
    return torch.sigmoid((energy - level) / slope_db).float()  # (T,)


def binarize(probs: Tensor, onset: float, offset: float) -> list[tuple[int, int]]:
    """Hysteresis (NeMo's `binarization` loop): runs [a, b) of speech frames; a
    run starts where score > onset and ends where a later score < offset."""
    runs, start, speech = [], 0, False
    for t, score in enumerate(probs.tolist()):
        if speech and score < offset:
            runs.append((start, t))
            speech = False
        elif not speech and score > onset:
            start, speech = t, True
    if speech:
        runs.append((start, len(probs)))
    return runs


def merge_segments(segments: list) -> list[tuple[float, float]]:
    """Sorted union of (start, end) segments; touching ones merge (NeMo's
    merge_overlap_segment: end >= next start)."""
    merged: list[list[float]] = []
    for start, end in sorted(segments):
        if merged and merged[-1][1] >= start - EPS:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(start, end) for start, end in merged]


def drop_short_speech(segments: list, min_duration_on: float) -> list:
    """Keep segments lasting >= min_duration_on (NeMo's filter_short_segments)."""
    return [(s, e) for s, e in segments if e - s >= min_duration_on - EPS]


def fill_short_gaps(segments: list, min_duration_off: float) -> list:
    """Fill gaps between consecutive segments shorter than min_duration_off."""
    gaps = [(a[1], b[0]) for a, b in zip(segments, segments[1:])]
    short = [(s, e) for s, e in gaps if e - s < min_duration_off - EPS]
    return merge_segments(segments + short)


def speech_segments(
    probs: Tensor,
    frame_s: float,
    onset: float = 0.5,
    offset: float = 0.5,
    pad_onset: float = 0.0,
    pad_offset: float = 0.0,
    min_duration_on: float = 0.0,
    min_duration_off: float = 0.0,
    filter_speech_first: bool = True,
) -> list[tuple[float, float]]:
    """Frame scores (T,) -> sorted speech segments [(start, end)] in seconds, by
    NeMo's binarization and filtering (steps a-c of the module docstring)."""
    assert probs.dim() == 1, f"probs must be (T,), got {tuple(probs.shape)}"
    total = len(probs) * frame_s  # the end of the last frame
    # a, b) hysteresis, padding (clipped to the recording), merge
    padded = []
    for a, b in binarize(probs, onset, offset):
        start = max(0.0, a * frame_s - pad_onset)
        end = min(total, b * frame_s + pad_offset)
        if end > start + EPS:
            padded.append((start, end))
    segments = merge_segments(padded)
    # c) filtering: short speech out, short gaps filled (NeMo's default order)
    if filter_speech_first:
        if min_duration_on > 0:
            segments = drop_short_speech(segments, min_duration_on)
        if min_duration_off > 0:
            segments = fill_short_gaps(segments, min_duration_off)
    else:
        if min_duration_off > 0:
            segments = fill_short_gaps(segments, min_duration_off)
        if min_duration_on > 0:
            segments = drop_short_speech(segments, min_duration_on)
    return segments


# post-processing for the energy baseline: bridge the dips inside words and the
# short pauses between them (diarization wants turns), drop clicks
ENERGY_POSTPROCESSING = {
    "onset": 0.5,
    "offset": 0.5,
    "pad_onset": 0.0,
    "pad_offset": 0.0,
    "min_duration_on": 0.1,
    "min_duration_off": 0.2,
}


def energy_vad(
    wave: Tensor, sample_rate: int = 16000, **postprocessing
) -> list[tuple[float, float]]:
    """Speech segments (seconds) of wave (S,) by the energy baseline at 10 ms
    frames; `postprocessing` overrides ENERGY_POSTPROCESSING (speech_segments)."""
    probs = energy_frame_probs(wave, sample_rate, frame_s=0.01)  # (T,)
    return speech_segments(probs, 0.01, **{**ENERGY_POSTPROCESSING, **postprocessing})


def frame_labels(segments, n_frames: int, frame_s: float) -> Tensor:
    """(start, end) seconds -> labels (T,) 0/1 float: frame t is speech when
    start <= t * frame_s < end for some segment."""
    times = torch.arange(n_frames, dtype=torch.float64) * frame_s  # (T,)
    labels = torch.zeros(n_frames)
    for start, end in segments:
        labels[(times >= start - EPS) & (times < end - EPS)] = 1.0
    return labels  # (T,)


def frame_f1(pred: Tensor, ref: Tensor) -> tuple[float, float, float]:
    """Precision, recall and F1 of speech frames: pred (T,), ref (T,) 0/1. An
    empty class counts as perfect (no speech predicted and none there: 1.0)."""
    assert pred.shape == ref.shape, (
        f"pred {tuple(pred.shape)} != ref {tuple(ref.shape)}"
    )
    return f1_from_counts(*speech_counts(pred, ref))


def speech_counts(pred: Tensor, ref: Tensor) -> tuple[int, int, int]:
    """(true positives, predicted speech, reference speech) frame counts."""
    pred, ref = pred.bool(), ref.bool()
    return int((pred & ref).sum()), int(pred.sum()), int(ref.sum())


def f1_from_counts(hits: int, n_pred: int, n_ref: int) -> tuple[float, float, float]:
    """(precision, recall, F1) from summed counts (1.0 where a denominator is 0)."""
    precision = hits / n_pred if n_pred else 1.0
    recall = hits / n_ref if n_ref else 1.0
    total = precision + recall
    return precision, recall, 2 * precision * recall / total if total else 0.0
