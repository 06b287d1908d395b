"""Pitch in the scoring space: log F0 of tones and of corpus speakers, the pitch
coordinates' dot product against the Gaussian kernel integrated in float64, the
backend's cosine against the fused score written out, and the model wiring."""

import math

import numpy as np
import pytest
import torch

from minispeech.audio import load_audio
from minispeech.core.config import ConfigError
from minispeech.data.manifest import read_manifest
from minispeech.metrics.eer import eer
from minispeech.speaker import SpeakerModel
from minispeech.speaker.backend import LDABackend
from minispeech.speaker.pitch import log_pitch, pitch_coordinates, pitch_grid
from minispeech.speaker.scoring import pair_trials
from tests.speaker.test_speaker_model import tiny_cfg, write_manifest

SR = 16000


def tone(f0: float, seconds: float = 0.6, harmonics: int = 5) -> torch.Tensor:
    """A harmonic tone (S,) with a falling spectrum: a crude voiced sound."""
    t = torch.arange(int(seconds * SR), dtype=torch.float64) / SR
    wave = sum(torch.sin(2 * math.pi * k * f0 * t) / k for k in range(1, harmonics + 1))
    return (0.1 * wave).float()


@pytest.mark.parametrize("f0", [60.0, 110.0, 240.0, 520.0])
def test_log_pitch_of_tones(f0):
    assert abs(log_pitch(tone(f0), SR) - math.log(f0)) < 0.01


def test_log_pitch_is_nan_without_voicing():
    gen = torch.Generator().manual_seed(0)
    assert math.isnan(log_pitch(0.1 * torch.randn(SR, generator=gen), SR))
    assert math.isnan(log_pitch(torch.zeros(SR), SR))
    assert math.isnan(log_pitch(tone(150.0, seconds=0.01), SR))  # under a frame


def test_corpus_speakers_of_one_variant_differ_in_pitch(corpus_dir):
    # far: f049 and f050 are one espeak-ng variant (aunty) at -p 12 and -p 88
    rows = read_manifest(corpus_dir / "far.jsonl")

    def pitches(speaker):
        picked = [r for r in rows if r["speaker"] == speaker][:6]
        return [log_pitch(load_audio(r["audio_filepath"])[0], SR) for r in picked]

    low, high = pitches("f049"), pitches("f050")
    assert not any(map(math.isnan, low + high))
    assert min(high) - max(low) > 0.5  # F0 ratio > 1.6 between them
    assert np.std(low) < 0.1 and np.std(high) < 0.1  # within one speaker


def kernel_reference(a: float, b: float, width: float, centres) -> float:
    """p(a) . p(b) by the definition: sums over the grid in float64."""
    phi_a = [math.exp(-((a - c) ** 2) / (2 * width**2)) for c in centres]
    phi_b = [math.exp(-((b - c) ** 2) / (2 * width**2)) for c in centres]
    dot = sum(x * y for x, y in zip(phi_a, phi_b))
    return dot / math.sqrt(sum(x * x for x in phi_a) * sum(y * y for y in phi_b))


@pytest.mark.parametrize("width", [0.1, 0.15, 0.3])
def test_pitch_coordinates_dot_is_the_gaussian_kernel(width):
    rng = np.random.default_rng(0)
    f = torch.tensor(rng.uniform(math.log(55), math.log(750), size=12))
    p = pitch_coordinates(f, width)  # (12, K)
    torch.testing.assert_close(p.norm(dim=1), torch.ones(12, dtype=torch.float64))
    centres = pitch_grid(width).tolist()
    dots = p @ p.T
    for i in range(12):
        for j in range(12):
            a, b = float(f[i]), float(f[j])
            assert abs(dots[i, j] - kernel_reference(a, b, width, centres)) < 1e-9
            # the closed form of an unbounded, fine grid: exp(-d^2 / 4w^2)
            closed = math.exp(-((a - b) ** 2) / (4 * width**2))
            assert abs(dots[i, j] - closed) < 1e-3


def test_pitch_coordinates_fall_with_the_pitch_gap_and_zero_when_unvoiced():
    f = torch.tensor([math.log(120.0) + d for d in np.linspace(0, 1.5, 16)])
    dots = pitch_coordinates(f, 0.15) @ pitch_coordinates(f[:1], 0.15).T  # (16, 1)
    assert bool((dots[1:, 0] <= dots[:-1, 0] + 1e-12).all())  # never rises again
    p = pitch_coordinates(torch.tensor([math.nan, math.log(100.0)]), 0.15)
    assert float(p[0].abs().sum()) == 0.0 and abs(float(p[1].norm()) - 1) < 1e-12


def test_backend_cosine_is_the_fused_score():
    gen = torch.Generator().manual_seed(3)
    backend = LDABackend(6, 3, pitch_weight=0.3, pitch_width=0.15)
    backend.set(torch.randn(6, generator=gen).numpy(), torch.randn(6, 3).numpy())
    embs = torch.randn(5, 6, generator=gen)
    f = torch.log(torch.tensor([90.0, 100.0, 180.0, 95.0, float("nan")]))
    space = backend(embs, f)  # (5, 3 + K)
    lda = LDABackend(6, 3)
    lda.set(backend.mean.numpy(), backend.projection.numpy())
    y = torch.nn.functional.normalize(lda(embs), dim=1)  # (5, 3)
    p = pitch_coordinates(f, 0.15)  # (5, K)
    fused = 0.7 * (y @ y.T) + 0.3 * (p @ p.T)  # (1 - g) cos_LDA + g k(F0)
    torch.testing.assert_close(space @ space.T, fused)
    with pytest.raises(ValueError, match="log F0"):
        backend(embs)
    unfitted = LDABackend(6, 3, pitch_weight=0.3)
    assert unfitted(embs).shape == (5, 6)  # NeMo's embeddings, normalised


def test_model_scores_pitch_everywhere(tmp_path):
    manifest, _ = write_manifest(tmp_path, ["ann", "bob", "cid", "ann"])
    backend = {"lda_dim": 2, "pitch_weight": 0.4, "augmentor": {"babble_speakers": 2}}
    cfg = {**tiny_cfg(), "backend": backend}
    cfg["train_ds"] = {"manifest_filepath": str(manifest)}
    model = SpeakerModel(cfg).eval()
    model.on_train_end()
    assert model.scores_pitch
    waves = [tone(100.0), tone(105.0), tone(210.0), tone(98.0, 0.45)]
    pitch = model.utterance_pitch(waves)  # (4,)
    space = model.scoring_space(model.get_embeddings(waves), pitch)
    torch.testing.assert_close(model.scoring_embeddings(waves), space)
    # validation (so `evaluate`) measures the pitch of every utterance itself
    speakers = ["ann", "bob", "cid", "ann"]
    batch = model.collate(
        [
            {"audio": w, "label": 0, "speaker": s, "id": str(k)}
            for k, (w, s) in enumerate(zip(waves, speakers))
        ]
    )
    with torch.no_grad():
        stats = model.validation_step(batch)
    torch.testing.assert_close(torch.tensor(stats["log_pitch"]), pitch.float())
    stats["embeddings"] = model.get_embeddings(waves).tolist()
    expected = eer(*pair_trials(space, speakers))
    assert abs(model.validation_metrics(stats)["val_eer"] - expected) < 1e-9
    score = model.similarity(space[0], space[1])
    assert model.verify_speakers(waves[0], waves[1], threshold=score - 1e-9)
    assert not model.verify_speakers(waves[0], waves[1], threshold=score + 1e-6)


@pytest.mark.parametrize(
    "backend, field",
    [
        ({"lda_dim": 2, "pitch_weight": 1.0}, "model.backend.pitch_weight"),
        ({"lda_dim": 2, "pitch_weight": -0.1}, "model.backend.pitch_weight"),
        ({"lda_dim": 2, "pitch_weight": "0.3"}, "model.backend.pitch_weight"),
        ({"lda_dim": 2, "pitch_width": 0}, "model.backend.pitch_width"),
    ],
)
def test_pitch_settings_are_checked_by_name(backend, field):
    with pytest.raises(ConfigError, match=field):
        SpeakerModel({**tiny_cfg(), "backend": backend})
