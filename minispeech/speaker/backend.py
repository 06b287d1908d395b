"""A multi-condition LDA backend: the space in which a SpeakerModel scores embeddings.

Linear discriminant analysis (Fisher 1936), as the i-vector and x-vector systems put it
between the network and the cosine score (Dehak et al. 2011, IEEE TASLP 19(4), Sec.
III-B; Snyder et al. 2018, ICASSP, Sec. 3.3). On N training embeddings x_n of K known
speakers, L2-normalised and centred on their mean mu:

    S_w = 1/N sum_k sum_{n in k} (x_n - m_k)(x_n - m_k)^T     within speakers
    S_b = 1/K sum_k m_k m_k^T                                  between speakers
    S_w <- S_w + s tr(S_w) / E I                               shrinkage s, E = dims

and the projection P (E, d) keeps the d leading solutions of S_b v = lambda S_w v,
scaled so that P^T S_w P = I (P = S_w^-1/2 V_d, V_d the leading eigenvectors of
S_w^-1/2 S_b S_w^-1/2). An embedding is scored as (x / |x| - mu) P, by cosine.

Multi-condition: S_w is estimated over each training utterance as recorded and again
mixed with noise (the `augmentor` of the backend section), so the directions along
which noise moves an embedding count as within-speaker variation and are scaled down:
this is what makes the backend a noise-robustness tool (the "multi-condition
training" of PLDA backends, e.g. Garcia-Romero et al. 2012, Odyssey). The network's
own embeddings (`get_embeddings`, NeMo's) are unchanged; verification, identification
and the EER of `evaluate` use the backend once it is fitted.

With `pitch_weight` g > 0 the fitted backend also scores pitch: each utterance's
vector is [sqrt(1 - g) y / |y|, sqrt(g) p], y its LDA projection and p its pitch
coordinates (speaker/pitch.py), so a cosine is (1 - g) cos_LDA + g k(F0_a, F0_b).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from minispeech.audio import AudioAugmentor
from minispeech.core.config import ConfigError, check_arguments, check_keys
from minispeech.speaker.dataset import SpeakerDataset
from minispeech.speaker.pitch import pitch_coordinates

BACKEND_KEYS = (
    "lda_dim",
    "shrink",
    "noisy_copies",
    "augmentor",
    "manifest_filepath",
    "pitch_weight",
    "pitch_width",
)
DEFAULT_AUGMENTOR = {  # the noisy copies: white, pink or babble at 10-20 dB SNR
    "noise_snr_db": [10.0, 20.0],
    "noise_kinds": ["white", "pink", "babble"],
    "babble_speakers": 4,
    "prob": 1.0,
}


def fit_lda(
    embeddings, speakers, dim: int, shrink: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """The backend of N embeddings (N, E) with their speaker names: the mean mu (E,)
    of the L2-normalised embeddings and the projection P (E, dim) (module docstring),
    in float64."""
    x = np.asarray(embeddings, dtype=np.float64)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)  # (N, E)
    names = sorted(set(speakers))
    if len(names) < 2 or not 1 <= dim <= min(x.shape[1], len(names) - 1):
        raise ValueError(
            f"LDA to {dim} dimensions needs 1 <= dim <= min(E={x.shape[1]}, "
            f"speakers - 1 = {len(names) - 1})"
        )
    mu = x.mean(0)  # (E,)
    x = x - mu
    spk = np.array([names.index(name) for name in speakers])  # (N,)
    means = np.stack([x[spk == k].mean(0) for k in range(len(names))])  # (K, E)
    within = x - means[spk]  # (N, E)
    s_w = within.T @ within / len(x)  # (E, E)
    s_b = means.T @ means / len(names)  # (E, E)
    s_w += shrink * np.trace(s_w) / len(s_w) * np.eye(len(s_w))
    values, vectors = np.linalg.eigh(s_w)
    w_half = vectors @ np.diag(values**-0.5) @ vectors.T  # S_w^-1/2, symmetric
    _, b_vectors = np.linalg.eigh(w_half @ s_b @ w_half)  # ascending eigenvalues
    return mu, w_half @ b_vectors[:, ::-1][:, :dim]  # (E,), (E, dim)


class LDABackend(nn.Module):
    """The fitted backend as buffers (kept in the model file): `forward` maps
    embeddings (N, E), with their log F0 (N,) when it scores pitch, to the scoring
    space (N, E'); unfitted, it only L2-normalises."""

    def __init__(
        self,
        emb_dim: int,
        lda_dim: int = 32,
        pitch_weight: float = 0.0,
        pitch_width: float = 0.15,
    ):
        super().__init__()
        assert 0.0 <= pitch_weight < 1.0, f"pitch_weight in [0, 1), {pitch_weight}"
        self.pitch_weight, self.pitch_width = pitch_weight, pitch_width
        self.register_buffer("mean", torch.zeros(emb_dim))
        self.register_buffer("projection", torch.eye(emb_dim)[:, :lda_dim])
        self.register_buffer("fitted", torch.tensor(False))

    @property
    def scores_pitch(self) -> bool:
        """Whether a fitted forward needs each utterance's log F0."""
        return bool(self.fitted) and self.pitch_weight > 0

    def set(self, mean: np.ndarray, projection: np.ndarray) -> None:
        self.mean.copy_(torch.as_tensor(mean))
        self.projection.copy_(torch.as_tensor(projection))
        self.fitted.fill_(True)

    def forward(self, embs: Tensor, log_f0: Tensor | None = None) -> Tensor:
        x = nn.functional.normalize(embs.double(), dim=-1)  # (N, E)
        if not bool(self.fitted):
            return x
        y = (x - self.mean.double()) @ self.projection.double()  # (N, dim)
        if not self.scores_pitch:
            return y
        if log_f0 is None:
            raise ValueError(
                "this backend scores pitch (pitch_weight > 0): give each "
                "utterance's log F0, as SpeakerModel.scoring_embeddings does"
            )
        assert len(log_f0) == len(y), f"log_f0 {tuple(log_f0.shape)}, embs {y.shape}"
        g = self.pitch_weight
        p = pitch_coordinates(log_f0, self.pitch_width).to(y.device)  # (N, K)
        y = nn.functional.normalize(y, dim=-1)  # (N, dim)
        return torch.cat([(1 - g) ** 0.5 * y, g**0.5 * p], dim=-1)  # (N, dim + K)


def backend_section(cfg, emb_dim: int, n_speakers: int) -> dict:
    """`model.backend` checked by field, with its defaults filled in."""
    if not isinstance(cfg, dict):
        raise ConfigError("model.backend: a section (lda_dim, shrink, ...) or absent")
    check_keys("model.backend", cfg, BACKEND_KEYS)
    defaults = {"lda_dim": 32, "shrink": 0.1, "noisy_copies": 1}
    out = {**defaults, "pitch_weight": 0.0, "pitch_width": 0.15, **cfg}
    out["augmentor"] = {**DEFAULT_AUGMENTOR, **(cfg.get("augmentor") or {})}
    dim, top = out["lda_dim"], min(emb_dim, n_speakers - 1)
    if not isinstance(dim, int) or isinstance(dim, bool) or not 1 <= dim <= top:
        raise ConfigError(
            f"model.backend.lda_dim: an integer from 1 to {top} (the embedding size "
            f"{emb_dim} and the speakers - 1, {n_speakers - 1}), got {dim!r}"
        )
    for key, kind in (("shrink", (int, float)), ("noisy_copies", int)):
        value = out[key]
        if not isinstance(value, kind) or isinstance(value, bool) or value < 0:
            noun = "an integer" if kind is int else "a number"
            raise ConfigError(f"model.backend.{key}: {noun} >= 0, got {value!r}")
    weight, width = out["pitch_weight"], out["pitch_width"]
    if not _is_number(weight) or not 0 <= weight < 1:
        raise ConfigError(f"model.backend.pitch_weight: in [0, 1), got {weight!r}")
    if not _is_number(width) or width <= 0:
        raise ConfigError(f"model.backend.pitch_width: > 0 (log Hz), got {width!r}")
    # the noisy copies' augmentor is built after training: check it now
    where = "model.backend.augmentor"
    check_arguments(AudioAugmentor, out["augmentor"], where, ("sample_rate",), "key")
    try:
        AudioAugmentor(**out["augmentor"])
    except ValueError as error:
        raise ConfigError(f"{where}: {error}") from None
    return out


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def fit_backend(model, cfg: dict, manifest, seed: int = 0) -> None:
    """Fit `model.backend` on the embeddings of `manifest`'s utterances, as
    recorded and `noisy_copies` times through the backend's augmentor (drawn from
    torch's generator seeded by `seed`; the caller's generator is left as it was)."""
    dataset = SpeakerDataset(
        manifest, model.labels, sample_rate=model.sample_rate, cache_audio=True
    )
    waves = [dataset[i]["audio"] for i in range(len(dataset))]  # [(S_i,)]
    embs = [model.get_embeddings(waves, batch_size=16)]  # [(N, E)]
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for _ in range(cfg["noisy_copies"]):
            augmentor = AudioAugmentor(
                sample_rate=model.sample_rate, **cfg["augmentor"]
            )
            augmentor.babble_source = dataset.audio.random_waves  # other utterances
            noisy = [augmentor(wave) for wave in waves]
            embs.append(model.get_embeddings(noisy, batch_size=16))
    speakers = dataset.speakers * len(embs)
    mean, projection = fit_lda(
        torch.cat(embs).numpy(), speakers, cfg["lda_dim"], cfg["shrink"]
    )
    model.backend.set(mean, projection)
