"""The LDA backend: the projection against the generalized eigenproblem solved in
float64 by brute force, what it does to a nuisance direction, and the SpeakerModel
wiring (fitted after training, kept in the model file, used by every score)."""

import numpy as np
import pytest
import torch

from minispeech.core.config import ConfigError
from minispeech.core.model import restore_from
from minispeech.metrics.eer import eer
from minispeech.speaker import SpeakerModel
from minispeech.speaker.backend import LDABackend, fit_lda
from minispeech.speaker.scoring import pair_trials
from tests.speaker.test_speaker_model import tiny_cfg, waves, write_manifest


def scatter(x, speakers):
    """S_w and S_b of L2-normalised, centred x (N, E), by loops in float64."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    x = x - x.mean(0)
    names = sorted(set(speakers))
    s_w, s_b = np.zeros((x.shape[1],) * 2), np.zeros((x.shape[1],) * 2)
    for name in names:
        rows = x[[i for i, s in enumerate(speakers) if s == name]]
        m = rows.mean(0)
        for row in rows:
            s_w += np.outer(row - m, row - m)
        s_b += np.outer(m, m)
    return s_w / len(x), s_b / len(names)


@pytest.mark.parametrize("shrink", [0.0, 0.3])
def test_projection_solves_the_generalized_eigenproblem(shrink):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 8))
    speakers = [f"s{k}" for k in range(6) for _ in range(20)]
    x = np.repeat(centres, 20, axis=0) + 0.7 * rng.normal(size=(120, 8))
    mean, projection = fit_lda(x, speakers, dim=3, shrink=shrink)
    s_w, s_b = scatter(x, speakers)
    s_w += shrink * np.trace(s_w) / 8 * np.eye(8)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    np.testing.assert_allclose(mean, unit.mean(0), atol=1e-12)
    # whitened within speakers; between speakers diagonal, the 3 largest of the
    # generalized eigenvalues (brute force: the eigenvalues of S_w^-1 S_b)
    np.testing.assert_allclose(projection.T @ s_w @ projection, np.eye(3), atol=1e-9)
    between = projection.T @ s_b @ projection
    brute = np.sort(np.linalg.eigvals(np.linalg.inv(s_w) @ s_b).real)[::-1]
    np.testing.assert_allclose(between, np.diag(brute[:3]), atol=1e-9)
    # the same subspace as the leading eigenvectors of S_w^-1 S_b
    values, vectors = np.linalg.eig(np.linalg.inv(s_w) @ s_b)
    lead = vectors[:, np.argsort(-values.real)[:3]].real
    basis = np.linalg.qr(projection)[0]
    residual = lead - basis @ (basis.T @ lead)
    assert np.abs(residual).max() < 1e-9 * np.abs(lead).max()


def test_lda_scales_down_a_direction_that_noise_moves():
    # 10 speakers apart along dims 0-3 (and all along dim 7, as real embeddings
    # share a mean); a "noise condition" shifts half of the utterances along dims
    # 4-5 by more than speakers differ: the cosine confuses them, LDA does not
    rng = np.random.default_rng(1)
    centres = np.zeros((10, 8))
    centres[:, :4], centres[:, 7] = rng.normal(size=(10, 4)), 4.0
    x = np.repeat(centres, 30, axis=0) + 0.2 * rng.normal(size=(300, 8))
    x[::2, 4:6] += 2.0 * rng.normal(size=(150, 2))
    speakers = [f"s{k}" for k in range(10) for _ in range(30)]
    train, test = list(range(0, 300, 3)), [i for i in range(300) if i % 3]
    mean, projection = fit_lda(x[train], [speakers[i] for i in train], dim=4)
    backend = LDABackend(8, 4)
    backend.set(mean, projection)
    names = [speakers[i] for i in test]
    raw = eer(*pair_trials(torch.tensor(x[test]), names))
    lda = eer(*pair_trials(backend(torch.tensor(x[test])), names))
    assert raw > 0.2 and lda < 0.5 * raw and lda < 0.1, (raw, lda)


def test_fit_lda_refuses_too_many_dimensions():
    with pytest.raises(ValueError, match="speakers - 1 = 1"):
        fit_lda(np.eye(4), ["a", "a", "b", "b"], dim=2)


BACKEND = {"lda_dim": 2, "noisy_copies": 1, "augmentor": {"babble_speakers": 2}}


def test_model_fits_its_backend_after_training_and_keeps_it(tmp_path):
    manifest, _ = write_manifest(tmp_path, ["ann", "bob", "cid", "ann"])
    cfg = {**tiny_cfg(), "backend": BACKEND}
    cfg["train_ds"] = {"manifest_filepath": str(manifest)}
    model = SpeakerModel(cfg).eval()
    embs = model.get_embeddings(waves())  # (4, 8)
    assert model.scoring_space(embs) is embs  # unfitted: scores as NeMo's
    model.on_train_end()
    assert bool(model.backend.fitted)
    space = model.scoring_space(embs)  # (4, 2)
    assert space.shape == (4, 2)
    # the network's embeddings are unchanged; scores, identification and the
    # validation EER are taken in the backend's space
    torch.testing.assert_close(model.get_embeddings(waves()), embs)
    stats = {"embeddings": embs.tolist(), "speakers": ["ann", "bob", "cid", "ann"]}
    scores, targets = pair_trials(space, stats["speakers"])
    assert model.validation_metrics(stats)["val_eer"] == eer(scores, targets)
    a, b = model.scoring_space(model.get_embeddings(waves()[:2], batch_size=1))
    score = model.similarity(a, b)
    assert model.verify_speakers(waves()[0], waves()[1], threshold=score)
    assert not model.verify_speakers(waves()[0], waves()[1], threshold=score + 1e-6)
    again = restore_from(model.save_to(tmp_path / "spk.nemo")).eval()
    torch.testing.assert_close(again.scoring_space(embs), space)
    # the same seed draws the same noisy copies: the same backend
    model.on_train_end()
    torch.testing.assert_close(model.scoring_space(embs), space)


@pytest.mark.parametrize(
    "backend, field",
    [
        ({"lda_dim": 3}, "model.backend.lda_dim"),  # 3 speakers: at most 2
        ({"lda_dim": 0}, "model.backend.lda_dim"),
        ({"lda_dim": 2, "shrink": -0.1}, "model.backend.shrink"),
        ({"lda_dim": 2, "noisy_copies": 1.5}, "model.backend.noisy_copies"),
        ({"lda_dims": 2}, "lda_dims"),
        ({"lda_dim": 2, "augmentor": {"snr_db": [0, 9]}}, "model.backend.augmentor"),
        (
            {"lda_dim": 2, "augmentor": {"noise_snr_db": [20, 10]}},
            "model.backend.augmentor",
        ),
        ([2], "model.backend"),
    ],
)
def test_backend_settings_are_checked_by_name(backend, field):
    with pytest.raises(ConfigError, match=field):
        SpeakerModel({**tiny_cfg(), "backend": backend})
