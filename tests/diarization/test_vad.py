"""The energy VAD on corpus audio, NeMo's post-processing (hand cases and a slow
frame-by-frame reference), and frame labels / frame F1."""

import json
import random

import numpy as np
import pytest
import torch

from minispeech.audio import load_audio
from minispeech.audio.noise import pink_noise, scale_to_snr, white_noise
from minispeech.diarization.vad import (
    energy_frame_probs,
    energy_vad,
    frame_f1,
    frame_labels,
    speech_segments,
)

# ------------------------------------------------------------ the energy baseline


def dev_utterance(corpus_dir, index: int) -> tuple[torch.Tensor, dict]:
    rows = [json.loads(line) for line in open(corpus_dir / "dev.jsonl")]
    row = rows[index]
    wave, _ = load_audio(corpus_dir / row["audio_filepath"], sample_rate=16000)
    return wave, row


def padded_utterance(corpus_dir, index: int, lead: float, tail: float):
    """A dev utterance with `lead` / `tail` seconds of silence around it, and its
    reference segment [first word start, last word end] in the padded audio."""
    wave, row = dev_utterance(corpus_dir, index)
    zeros = torch.zeros
    padded = torch.cat([zeros(int(lead * 16000)), wave, zeros(int(tail * 16000))])
    span = (lead + row["words"][0][1], lead + row["words"][-1][2])
    return padded, [span]


def energy_f1(wave: torch.Tensor, reference) -> float:
    n_frames = wave.numel() // 160
    pred = frame_labels(energy_vad(wave), n_frames, 0.01)  # (T,)
    return frame_f1(pred, frame_labels(reference, n_frames, 0.01))[2]


@pytest.mark.parametrize("index", [0, 3, 17])
def test_energy_vad_finds_a_padded_corpus_utterance(corpus_dir, index):
    wave, reference = padded_utterance(corpus_dir, index, lead=0.8, tail=1.1)
    assert energy_frame_probs(wave).shape == (wave.numel() // 160,)
    assert energy_f1(wave, reference) > 0.9
    (start, end), (ref_start, ref_end) = energy_vad(wave)[0], reference[0]
    assert abs(start - ref_start) < 0.05 and abs(end - ref_end) < 0.1


@pytest.mark.parametrize("kind", ["white", "pink"])
@pytest.mark.parametrize("snr_db", [10.0, 20.0])
def test_energy_vad_in_noise(corpus_dir, kind, snr_db):
    """Two utterances 0.6 s apart with 0.5 s around, noise over the whole clip."""
    first, ref_a = padded_utterance(corpus_dir, 5, lead=0.5, tail=0.6)
    second, ref_b = padded_utterance(corpus_dir, 40, lead=0.0, tail=0.5)
    offset = first.numel() / 16000
    reference = ref_a + [(offset + s, offset + e) for s, e in ref_b]
    clean = torch.cat([first, second]).numpy()
    make = {"white": white_noise, "pink": pink_noise}[kind]
    noise = scale_to_snr(clean, make(clean.size, np.random.default_rng(3)), snr_db)
    assert energy_f1(torch.from_numpy(clean + noise), reference) > 0.9


def test_energy_scores_do_not_depend_on_the_gain(corpus_dir):
    wave, _ = padded_utterance(corpus_dir, 0, lead=0.5, tail=0.5)
    wave = wave + 1e-3 * torch.randn(wave.shape)
    loud, quiet = energy_frame_probs(wave), energy_frame_probs(0.01 * wave)
    assert torch.allclose(loud, quiet, atol=1e-4)


# ------------------------------------------------------------ post-processing


def close(got: list, want: list) -> bool:
    """Same number of segments, boundaries equal to 1 ns."""
    return len(got) == len(want) and np.allclose(got, want, atol=1e-9)


def test_speech_segments_hand_cases():
    scores = torch.tensor([0.0, 0.0, 0.9, 0.9, 0.9, 0.0, 0.0])
    assert close(speech_segments(scores, 0.1), [(0.2, 0.5)])
    # hysteresis: a segment starts above onset and ends only below offset
    scores = torch.tensor([0.0, 0.8, 0.5, 0.5, 0.2, 0.5, 0.8, 0.2])
    got = speech_segments(scores, 1.0, onset=0.7, offset=0.3)
    assert got == [(1.0, 4.0), (6.0, 7.0)]
    assert speech_segments(scores, 1.0) == [(1.0, 4.0), (6.0, 7.0)]  # 0.5 !< 0.5
    got = speech_segments(scores, 1.0, onset=0.7, offset=0.6)
    assert got == [(1.0, 2.0), (6.0, 7.0)]
    # a segment open at the end ends with the last frame
    assert speech_segments(torch.tensor([0.0, 0.9, 0.9]), 1.0) == [(1.0, 3.0)]
    assert speech_segments(torch.zeros(5), 0.01) == []
    assert speech_segments(torch.zeros(0), 0.01) == []


def test_padding_clips_and_merges():
    scores = torch.tensor([0.9, 0.0, 0.0, 0.9, 0.0, 0.0, 0.0, 0.0, 0.9, 0.9])
    pads = {"pad_onset": 1.0, "pad_offset": 1.0}
    # [0,1) [3,4) [8,10) -> [0,2) [2,5) [7,10): the first two touch and merge
    assert speech_segments(scores, 1.0, **pads) == [(0.0, 5.0), (7.0, 10.0)]
    # negative pads shrink; a segment they empty is dropped
    got = speech_segments(scores, 1.0, pad_onset=-0.5, pad_offset=-0.5)
    assert got == [(8.5, 9.5)]


def test_filtering_order_follows_filter_speech_first():
    """Speech [0,10) [12,13) [15,30) at 0.1 s frames: with NeMo's default order the
    0.1 s blip is removed first, so the 0.5 s gap it leaves stays; gaps first fills
    both 0.2 s gaps, and the result is one segment."""
    scores = torch.zeros(30)
    scores[0:10], scores[12:13], scores[15:30] = 1.0, 1.0, 1.0
    options = {"min_duration_on": 0.2, "min_duration_off": 0.3}
    assert close(speech_segments(scores, 0.1, **options), [(0.0, 1.0), (1.5, 3.0)])
    got = speech_segments(scores, 0.1, **options, filter_speech_first=False)
    assert close(got, [(0.0, 3.0)])
    # a segment exactly min_duration_on long stays; a gap exactly min_duration_off stays
    assert len(speech_segments(scores, 0.1, min_duration_on=0.1)) == 3
    assert len(speech_segments(scores, 0.1, min_duration_off=0.2)) == 3


def runs(mask: list) -> list[tuple[int, int]]:
    """[a, b) runs of True."""
    out, start = [], None
    for t, value in enumerate(mask + [False]):
        if value and start is None:
            start = t
        elif not value and start is not None:
            out.append((start, t))
            start = None
    return out


def reference_segments(scores, onset, offset, pads, min_on, min_off, speech_first):
    """Frame by frame, in frames: hysteresis state per frame, each run padded by
    `pads` frames and painted on a fresh mask, then short runs erased and short
    inner gaps filled (in the given order)."""
    n_frames, state, speech = len(scores), False, []
    for score in scores:
        if state and score < offset:
            state = False
        elif not state and score > onset:
            state = True
        speech.append(state)
    mask = [False] * n_frames
    for a, b in runs(speech):
        for t in range(max(0, a - pads[0]), min(n_frames, b + pads[1])):
            mask[t] = True

    def erase_short(mask):
        for a, b in runs(mask):
            if b - a < min_on:
                mask[a:b] = [False] * (b - a)

    def fill_short(mask):
        inner = runs([not v for v in mask])
        for a, b in inner:
            if 0 < a and b < n_frames and b - a < min_off:
                mask[a:b] = [True] * (b - a)

    for step in (
        (erase_short, fill_short) if speech_first else (fill_short, erase_short)
    ):
        step(mask)
    return runs(mask)


def test_speech_segments_match_the_frame_by_frame_reference():
    rng = random.Random(7)
    frame_s = 0.01
    for trial in range(300):
        n_frames = rng.randint(1, 60)
        # piecewise-constant scores make runs; noise makes flicker near thresholds
        levels = [rng.random() for _ in range(rng.randint(1, 8))]
        scores = [levels[t * len(levels) // n_frames] for t in range(n_frames)]
        scores = [min(1.0, max(0.0, s + rng.gauss(0, 0.15))) for s in scores]
        onset, offset = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8)
        pads = (rng.randint(-2, 4), rng.randint(-2, 4))
        min_on, min_off = rng.randint(0, 6), rng.randint(0, 6)
        speech_first = rng.random() < 0.5
        got = speech_segments(
            torch.tensor(scores),
            frame_s,
            onset=onset,
            offset=offset,
            pad_onset=pads[0] * frame_s,
            pad_offset=pads[1] * frame_s,
            min_duration_on=min_on * frame_s,
            min_duration_off=min_off * frame_s,
            filter_speech_first=speech_first,
        )
        want = reference_segments(
            scores, onset, offset, pads, min_on, min_off, speech_first
        )
        expected = [(a * frame_s, b * frame_s) for a, b in want]
        assert close(got, expected), (trial, got, expected)


# ------------------------------------------------------------ labels and F1


def test_frame_labels_hand_cases():
    labels = frame_labels([(0.02, 0.05), (0.08, 0.2)], 10, 0.01)
    assert labels.tolist() == [0, 0, 1, 1, 1, 0, 0, 0, 1, 1]
    assert frame_labels([], 4, 0.01).tolist() == [0, 0, 0, 0]
    assert frame_labels([(0.0, 0.3)], 3, 0.1).tolist() == [1, 1, 1]  # 0.1 * 3 ends


def test_segments_and_labels_round_trip():
    torch.manual_seed(1)
    labels = (torch.rand(500) < 0.5).float()  # (T,)
    segments = speech_segments(labels, 0.01)
    assert torch.equal(frame_labels(segments, 500, 0.01), labels)


def test_frame_f1_hand_cases():
    pred = torch.tensor([1, 1, 0, 0, 1])
    ref = torch.tensor([1, 0, 0, 1, 1])
    precision, recall, f1 = frame_f1(pred, ref)  # 2 hits of 3 predicted, 3 there
    assert (precision, recall) == pytest.approx((2 / 3, 2 / 3))
    assert f1 == pytest.approx(2 / 3)
    assert frame_f1(ref, ref) == (1.0, 1.0, 1.0)
    assert frame_f1(torch.zeros(4), torch.zeros(4)) == (1.0, 1.0, 1.0)
    assert frame_f1(torch.zeros(4), torch.ones(4))[2] == 0.0
