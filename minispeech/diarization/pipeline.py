"""Offline speaker diarization: who spoke when, as NeMo's ClusteringDiarizer does it.

References:
1) NeMo 3.0's ClusteringDiarizer (nemo/collections/asr/models/clustering_diarizer.py)
   and its helpers: `get_subsegments` and `generate_cluster_labels` (its
   `get_contiguous_stamps` and `merge_stamps`) in
   nemo/collections/asr/parts/utils/speaker_utils.py, `get_argmin_mat` in
   nemo/collections/asr/parts/utils/offline_clustering.py.
2) Park, Koluguri, Kumar & Narayanan 2022, "Multi-scale Speaker Diarization with
   Dynamic Scale Weighting", arXiv:2203.15974, Sec. 2.1: the multi-scale windows, the
   shortest (the base scale) sets the time resolution, each base segment takes the
   coarser-scale segment whose centre is nearest.

For one recording:
  1) speech regions (start, end) from a VAD (energy, a learned one, or the reference),
  2) for each scale s (window w_s, shift h_s), the windows of every region [a, b):
     [a + k h_s, min(a + k h_s + w_s, b)] for k = 0 .. max(ceil((b - a - w_s) / h_s), 0)
     so a region shorter than w_s gets one (shorter) window; windows of
     `min_window` seconds or less are dropped (min_subsegment_duration, 0.05, of
     NeMo's segments_manifest_to_subsegments_manifest),
  3) a speaker embedding of every window (SpeakerModel.get_embeddings),
  4) base segment i takes, at scale s, the window j = argmin_j |c_i - c_j^s| with
     c = (start + end) / 2 (get_argmin_mat; ties to the earlier window),
  5) one label per base segment: NME-SC (clustering.py) on sum_s w_s A_s,
  6) turns: a base segment ending after the next one starts is cut at the midpoint
     of that overlap, then neighbours of one speaker that touch are merged.
The output has no overlapped speech (one speaker at a time, as NeMo without MSDD).

Defaults: the windows of NeMo's diar_infer_telephonic.yaml (and _general.yaml),
window_length_in_sec [1.5, 1.25, 1.0, 0.75, 0.5], shift_length_in_sec [0.75, 0.625,
0.5, 0.375, 0.25] (`NEMO_SCALES`). Two changes from NeMo's configs, tuned with a
trained TitaNet tiny on 96 simulated conversations of the dev speakers (`minispeech
corpus conversations dev.jsonl --n 12 --seed S` for S = 1..8):
- multiscale_weights [1, 1, 1, 1, 2] (NeMo: all 1). Each coarse window is the
  nearest of about 3 base segments, so neighbours share most of their affinity
  rows; the base scale, the only one unique to each segment, counts double.
- max_rp_threshold 0.2 (NeMo's configs 0.25, its SpeakerClustering default 0.15):
  the p-neighbour search goes up to p = 0.2 N. A small p links only a turn's own
  segments, and the eigengap then counts turns as speakers.
DER (collar 0.25 s, overlap scored) / speaker count exact, NeMo's weights and 0.15
-> these: oracle speech 3.5% / 83% -> 1.4% / 90%, energy VAD 2.6% / 85% -> 2.2% /
89%. Most count errors left miss a speaker who talks once (one 1-2 s utterance).
Windows longer than the turns (1-4 s) hurt: NeMo's meeting scales, 3.0 s down to
0.5 s, give 16% / 51% (oracle speech, NeMo's weights).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

from minispeech.diarization.clustering import (
    cluster_embeddings,
)
from minispeech.diarization.rttm import Segment
from minispeech.errors import MinispeechError

Region = tuple[float, float]  # (start, end) in seconds
# (window_length_in_sec, shift_length_in_sec), longest first: the base scale is last
NEMO_SCALES = ((1.5, 0.75), (1.25, 0.625), (1.0, 0.5), (0.75, 0.375), (0.5, 0.25))
NEMO_WEIGHTS = (1.0, 1.0, 1.0, 1.0, 1.0)
SCALES = NEMO_SCALES
WEIGHTS = (1.0, 1.0, 1.0, 1.0, 2.0)  # tuned on dev (module docstring)
MAX_RP_THRESHOLD = 0.2  # tuned on dev (module docstring)


class DiarizationError(MinispeechError, ValueError):
    """A recording that cannot be diarized as asked (more speakers than segments)."""


# --- 1. segmentation ----------------------------------------------------------------
def subsegments(
    start: float, end: float, window: float, shift: float, min_window: float = 0.05
) -> list[Region]:
    """The windows of one speech region [start, end) (NeMo's get_subsegments): one
    every `shift` seconds, the last cut at `end`; a window of `min_window` seconds or
    less is dropped."""
    n = max(math.ceil((end - start - window) / shift), 0) + 1
    windows = [
        (start + k * shift, min(start + k * shift + window, end)) for k in range(n)
    ]
    return [(a, b) for a, b in windows if b - a > min_window]


def multiscale_segments(
    regions: Sequence[Region], scales=SCALES, min_window: float = 0.05
) -> list[list[Region]]:
    """The windows of every region at each (window, shift) scale: S lists, in time
    order, the base scale (the last of `scales`) last."""
    return [
        [w for a, b in regions for w in subsegments(a, b, window, shift, min_window)]
        for window, shift in scales
    ]


def nearest_centre(base: Sequence[Region], coarse: Sequence[Region]) -> torch.Tensor:
    """For each base segment, the index of the coarse segment whose centre is
    nearest (NeMo's get_argmin_mat): (N,) in [0, N_s)."""
    base_centre = torch.tensor([(a + b) / 2 for a, b in base], dtype=torch.float64)
    coarse_centre = torch.tensor([(a + b) / 2 for a, b in coarse], dtype=torch.float64)
    distance = (coarse_centre[None, :] - base_centre[:, None]).abs()  # (N, N_s)
    return distance.argmin(dim=1)  # (N,), the first of equal distances


# --- 2. embeddings ------------------------------------------------------------------
def window_embeddings(
    wave: torch.Tensor,
    windows: Sequence[Region],
    speaker_model,
    batch_size: int = 64,
) -> torch.Tensor:
    """Speaker embeddings (N_s, E) of the windows of a wave (S,) at the model's rate."""
    rate = speaker_model.sample_rate
    pieces = [wave[round(a * rate) : round(b * rate)] for a, b in windows]
    return speaker_model.get_embeddings(pieces, batch_size=batch_size)  # (N_s, E)


def mapped_embeddings(
    wave: torch.Tensor,
    segments: list[list[Region]],
    speaker_model,
    batch_size: int = 64,
) -> list[torch.Tensor]:
    """Per-scale embeddings mapped to the N base segments: S tensors (N, E), the
    row i of scale s being the embedding of base segment i's nearest window."""
    base = segments[-1]
    out = []
    for windows in segments:
        embs = window_embeddings(wave, windows, speaker_model, batch_size)  # (N_s, E)
        out.append(embs[nearest_centre(base, windows)])  # (N, E)
    return out


# --- 3. labels -> turns -------------------------------------------------------------
def labels_to_turns(
    base: Sequence[Region], labels: Sequence[int], prefix: str = "speaker_"
) -> list[Segment]:
    """Speaker turns from labelled base segments (NeMo's generate_cluster_labels):
    1) where a segment ends after the next one starts, both stop at the midpoint
       of that overlap (get_contiguous_stamps), whatever their speakers,
    2) consecutive segments of one speaker that now touch merge (merge_stamps)."""
    turns: list[list] = []  # [start, end, label]
    for (start, end), label in zip(base, labels):
        if turns and turns[-1][1] > start:  # 1) overlap: cut at the midpoint
            turns[-1][1] = start = (start + turns[-1][1]) / 2
        if turns and turns[-1][1] == start and turns[-1][2] == int(label):
            turns[-1][1] = end  # 2) same speaker, touching: merge
        else:
            turns.append([start, end, int(label)])
    return [Segment(a, b - a, f"{prefix}{label}") for a, b, label in turns]


# --- 4. the pipeline ----------------------------------------------------------------
def diarize(
    wave: torch.Tensor,
    speaker_model,
    vad: Callable | None = None,
    num_speakers: int | None = None,
    max_num_speakers: int = 8,
    scales=SCALES,
    weights=WEIGHTS,
    min_window: float = 0.05,
    max_rp_threshold: float = MAX_RP_THRESHOLD,
    batch_size: int = 64,
    method: str = "nmesc",
) -> list[Segment]:
    """Speaker turns of one recording, a wave (S,) at the speaker model's rate.

    `vad(wave) -> [(start_s, end_s), ...]` finds the speech (default: energy_vad of
    diarization/vad.py); `num_speakers` fixes the count (an oracle), else NME-SC
    estimates it up to `max_num_speakers`. No speech -> []."""
    assert wave.ndim == 1, f"wave must be (S,), got {tuple(wave.shape)}"
    rate = speaker_model.sample_rate
    _, segments = find_windows(wave, rate, vad, num_speakers, scales, min_window)
    return diarize_segments(
        wave,
        segments,
        speaker_model,
        num_speakers,
        max_num_speakers,
        weights,
        max_rp_threshold,
        batch_size,
        method,
    )


def find_windows(
    wave: torch.Tensor,
    sample_rate: int,
    vad: Callable | None = None,
    num_speakers: int | None = None,
    scales=SCALES,
    min_window: float = 0.05,
) -> tuple[list[Region], list[list[Region]]]:
    """Steps 1-2 of diarize: the speech regions and their windows at each scale;
    an oracle num_speakers above the number of base segments is refused."""
    regions = speech_regions(wave, sample_rate, vad)
    segments = multiscale_segments(regions, scales, min_window)
    check_count(num_speakers, len(segments[-1]))
    return regions, segments


def diarize_segments(
    wave: torch.Tensor,
    segments: list[list[Region]],
    speaker_model,
    num_speakers: int | None = None,
    max_num_speakers: int = 8,
    weights=WEIGHTS,
    max_rp_threshold: float = MAX_RP_THRESHOLD,
    batch_size: int = 64,
    method: str = "nmesc",
) -> list[Segment]:
    """Steps 3-6 of diarize for the windows of multiscale_segments."""
    assert len(weights) == len(segments), (len(weights), len(segments))
    check_count(num_speakers, len(segments[-1]))
    if not segments[-1]:
        return []
    embs = mapped_embeddings(wave, segments, speaker_model, batch_size)  # S x (N, E)
    labels = cluster(
        embs, num_speakers, max_num_speakers, weights, max_rp_threshold, method
    )  # (N,)
    return labels_to_turns(segments[-1], labels.tolist())


def cluster(
    embs: list[torch.Tensor],
    num_speakers: int | None = None,
    max_num_speakers: int = 8,
    weights=WEIGHTS,
    max_rp_threshold: float = MAX_RP_THRESHOLD,
    method: str = "nmesc",
) -> torch.Tensor:
    """Labels (N,) of the base segments from S per-scale embeddings (N, E):
    cluster_embeddings with this pipeline's weights and p-search limit."""
    return cluster_embeddings(
        embs,
        num_speakers,
        max_num_speakers,
        list(weights),
        method,
        max_rp_threshold=max_rp_threshold,
    )  # (N,)


def speech_regions(wave: torch.Tensor, sample_rate: int, vad=None) -> list[Region]:
    """The speech regions of a wave: `vad(wave)`, or energy_vad by default."""
    if vad is None:
        from minispeech.diarization.vad import energy_vad

        return list(energy_vad(wave, sample_rate=sample_rate))
    return list(vad(wave))


def check_count(num_speakers: int | None, n_segments: int) -> None:
    """An oracle count must be >= 1 and no more than the base segments."""
    if num_speakers is None:
        return
    if num_speakers < 1:
        raise DiarizationError(f"num_speakers must be >= 1, got {num_speakers}")
    if n_segments and num_speakers > n_segments:
        raise DiarizationError(
            f"num_speakers {num_speakers} is more than the {n_segments} segments "
            "of speech found"
        )


def oracle_vad(
    turns: Sequence[Segment], offset: float = 0.0, sample_rate: int = 16000
) -> Callable:
    """A `vad` that returns the reference speech: the union of the turns, in the
    time of a wave that starts `offset` seconds into the file, cut to its length."""
    spans = sorted((s.start - offset, s.start + s.duration - offset) for s in turns)
    merged: list[list[float]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])

    def vad(wave: torch.Tensor) -> list[Region]:
        end = len(wave) / sample_rate
        return [(max(a, 0.0), min(b, end)) for a, b in merged if b > 0 and a < end]

    return vad


def diarize_files(
    rows: Sequence[dict],
    speaker_model,
    vad: Callable | str | None = None,
    oracle_num_speakers: bool = False,
    max_num_speakers: int = 8,
) -> dict[str, list[Segment]]:
    """diarize() over the rows of a diarization manifest (audio_filepath, and
    optional offset, duration, num_speakers and reference turns, as
    simulate.read_diarization_manifest gives them): {file id: turns}, the file id
    being the audio's stem, the times the file's. vad "oracle" takes each row's
    reference speech; `oracle_num_speakers` each row's num_speakers."""
    from pathlib import Path

    from minispeech.audio.io import load_audio

    out, rate = {}, speaker_model.sample_rate
    for row in rows:
        offset = float(row.get("offset") or 0.0)
        duration = row.get("duration")
        wave, _ = load_audio(row["audio_filepath"], rate, offset, duration)  # (S,)
        row_vad = oracle_vad(row["reference"], offset, rate) if vad == "oracle" else vad
        count = row.get("num_speakers") if oracle_num_speakers else None
        turns = diarize(wave, speaker_model, row_vad, count, max_num_speakers)
        shifted = [Segment(t.start + offset, t.duration, t.speaker) for t in turns]
        out[Path(row["audio_filepath"]).stem] = shifted
    return out
