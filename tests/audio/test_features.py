"""MelSpectrogram: NeMo's saved outputs, a float64 per-utterance reference, options."""

import inspect
import io
import json
import tarfile

import librosa
import numpy as np
import pytest
import torch

from minispeech.audio.features import MelSpectrogram

MODELS = ["conformer_ctc_tiny", "fastconformer_ctc_tiny", "fastconformer_rnnt_tiny"]

# AudioToMelSpectrogramPreprocessor.__init__ defaults in NeMo
# (nemo/collections/asr/modules/audio_preprocessing.py), plus use_grads and
# max_duration from FilterbankFeatures
# (nemo/collections/asr/parts/preprocessing/features.py)
NEMO_DEFAULTS = dict(
    sample_rate=16000, window_size=0.02, window_stride=0.01, n_window_size=None,
    n_window_stride=None, window="hann", normalize="per_feature", n_fft=None,
    preemph=0.97, features=64, lowfreq=0, highfreq=None, log=True,
    log_zero_guard_type="add", log_zero_guard_value=2**-24, dither=1e-5, pad_to=16,
    frame_splicing=1, exact_pad=False, pad_value=0, mag_power=2.0, rng=None,
    nb_augmentation_prob=0.0, nb_max_freq=4000, mel_norm="slaney", use_torchaudio=False,
    stft_exact_pad=False, stft_conv=False, use_grads=False, max_duration=16.7,
)  # fmt: skip


def _batch(lens=(16000, 9000, 12345), sample_rate=16000):
    """Zero-padded batch of noisy chirps (B, S) with their lengths."""
    audio = torch.zeros(len(lens), max(lens))
    for b, n in enumerate(lens):
        t = torch.arange(n) / sample_rate
        chirp = torch.sin(2 * np.pi * (200 + 1500 * t * (b + 1)) * t)
        audio[b, :n] = 0.5 * chirp + 0.05 * torch.randn(n)
    return audio, torch.tensor(lens)


def _load_ref(nemo_ref, name):
    cfg = json.loads((nemo_ref / f"{name}_io.json").read_text())
    return cfg["model_config"]["preprocessor"], np.load(nemo_ref / f"{name}_io.npz")


def test_signature_has_nemo_names_and_defaults():
    params = inspect.signature(MelSpectrogram.__init__).parameters
    ours = {k: p.default for k, p in params.items() if k != "self"}
    assert ours == NEMO_DEFAULTS


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("case", ["single_a", "single_b", "batch_acb"])
def test_reproduces_nemo_preprocessor(nemo_ref, name, case):
    section, ref = _load_ref(nemo_ref, name)
    assert "_target_" in section  # built from the section as saved, _target_ included
    model = MelSpectrogram.from_config(section).eval()
    audio = torch.from_numpy(ref[f"{case}/input_signal"])
    lens = torch.from_numpy(ref[f"{case}/input_length"])
    feats, feat_lens = model(audio, lens)
    expected = ref[f"{case}/processed_signal"]
    assert feats.shape == expected.shape
    assert feat_lens.tolist() == ref[f"{case}/processed_length"].tolist()
    assert np.abs(feats.numpy() - expected).max() <= 1e-3


def test_window_and_filterbank_equal_nemo_checkpoint(nemo_ref):
    # the .nemo tar stores NeMo's window and librosa filterbank; read them locally here
    with tarfile.open(nemo_ref / "conformer_ctc_tiny.nemo") as tar:
        member = next(
            m for m in tar.getmembers() if m.name.endswith("model_weights.ckpt")
        )
        state = torch.load(
            io.BytesIO(tar.extractfile(member).read()), weights_only=True
        )
    section, _ = _load_ref(nemo_ref, "conformer_ctc_tiny")
    model = MelSpectrogram.from_config(section)
    torch.testing.assert_close(model.window, state["preprocessor.featurizer.window"])
    fb = state["preprocessor.featurizer.fb"][0]  # (1, M, F) -> (M, F)
    torch.testing.assert_close(model.fb, fb, rtol=1e-6, atol=1e-9)


def _reference(wave, cfg):
    """Slow float64 log-mel of ONE utterance (S,): torch.stft + librosa, eval mode."""
    hop, win, n_fft = cfg["hop"], cfg["win"], cfg["n_fft"]
    x = wave.double()
    if cfg["preemph"] is not None:  # y[n] = x[n] - a x[n - 1], y[0] = x[0]
        x = torch.cat([x[:1], x[1:] - cfg["preemph"] * x[:-1]])
    window = cfg["window_fn"](win, periodic=False, dtype=torch.float64)
    spec = torch.stft(
        x,
        n_fft,
        hop,
        win,
        window,
        center=True,
        pad_mode="constant",
        return_complex=True,
    )  # (F, S // hop + 1)
    power = spec.abs() ** cfg["mag_power"]
    fb = librosa.filters.mel(
        sr=cfg["sr"], n_fft=n_fft, n_mels=cfg["features"], fmin=cfg["lowfreq"],
        fmax=cfg["highfreq"], norm=cfg["mel_norm"], dtype=np.float64,
    )  # fmt: skip
    mel = torch.from_numpy(fb) @ power  # (M, T)
    if cfg["log"]:
        guard = cfg["guard"]
        mel = (
            torch.log(mel + guard)
            if cfg["guard_type"] == "add"
            else mel.clamp_min(guard).log()
        )
    mel = mel[:, : len(wave) // hop]  # NeMo's valid frames: S // hop
    if cfg["normalize"] == "per_feature":
        mel = (mel - mel.mean(1, keepdim=True)) / (mel.std(1, keepdim=True) + 1e-5)
    elif cfg["normalize"] == "all_features":
        mel = (mel - mel.mean()) / (mel.std() + 1e-5)
    return mel


TINY, EPS = np.finfo(np.float32).tiny, np.finfo(np.float32).eps
# (MelSpectrogram kwargs, the matching settings of the reference)
CASES = [
    ({}, {}),  # every NeMo default
    (
        dict(normalize="all_features", log_zero_guard_type="clamp", pad_to=0,
             log_zero_guard_value="tiny", pad_value=-1.0),
        dict(guard_type="clamp", guard=TINY),
    ),
    (
        dict(normalize=None, log=False, mag_power=1.0, preemph=None, window="hamming",
             lowfreq=100, highfreq=6000, mel_norm=None, features=40),
        dict(window_fn=torch.hamming_window),
    ),
    (
        dict(window_size=None, window_stride=None, n_window_size=400, n_fft=1024,
             n_window_stride=128, window="blackman", log_zero_guard_value="eps"),
        dict(window_fn=torch.blackman_window, guard=EPS),
    ),
    (
        dict(sample_rate=8000, features=40, window="bartlett"),
        dict(window_fn=torch.bartlett_window),
    ),
    (dict(mag_power=1.5), {}),  # neither the magnitude nor the power
]  # fmt: skip


@pytest.mark.parametrize("kwargs,overrides", CASES)
def test_matches_float64_reference(kwargs, overrides):
    model = MelSpectrogram(**kwargs).eval()
    opts = {**NEMO_DEFAULTS, **kwargs}
    cfg = dict(
        hop=model.hop_length, win=model.win_length, n_fft=model.n_fft,
        sr=opts["sample_rate"], preemph=opts["preemph"], window_fn=torch.hann_window,
        mag_power=opts["mag_power"],
        features=opts["features"], lowfreq=opts["lowfreq"],
        highfreq=opts["highfreq"] or opts["sample_rate"] / 2, mel_norm=opts["mel_norm"],
        log=opts["log"], guard_type="add", guard=2**-24, normalize=opts["normalize"],
    )  # fmt: skip
    cfg.update(overrides)
    audio, lens = _batch(sample_rate=opts["sample_rate"])
    feats, feat_lens = model(audio, lens)
    pad_to = opts["pad_to"]
    assert (
        feats.shape[-1] % max(pad_to, 1) == 0
        and feats.shape[-1] >= lens.max() // cfg["hop"]
    )
    assert feat_lens.tolist() == (lens // cfg["hop"]).tolist()
    for b, n in enumerate(lens.tolist()):
        ref = _reference(audio[b, :n], cfg).float()
        valid = feats[b, :, : feat_lens[b]]
        scale = max(1.0, ref.abs().max().item())  # unlogged power: compare relatively
        assert (valid - ref).abs().max().item() <= 1e-3 * scale
        assert (feats[b, :, feat_lens[b] :] == opts["pad_value"]).all()


def test_batch_equals_one_at_a_time():
    model = MelSpectrogram(pad_to=0).eval()
    audio, lens = _batch()
    feats, feat_lens = model(audio, lens)
    for b, n in enumerate(lens.tolist()):
        one, one_len = model(audio[b : b + 1, :n], lens[b : b + 1])
        assert one_len.item() == feat_lens[b].item()
        torch.testing.assert_close(
            one[0, :, :one_len], feats[b, :, :one_len], atol=1e-5, rtol=0
        )


def test_frame_counts_pad_to_and_exact_pad():
    audio, lens = _batch(lens=(16000, 16080, 3205))
    feats, feat_lens = MelSpectrogram(pad_to=0).eval()(audio, lens)
    assert feats.shape[-1] == audio.shape[1] // 160 + 1  # centred frames: S // hop + 1
    assert feat_lens.tolist() == [100, 100, 20]  # reported: L // hop
    feats, _ = MelSpectrogram(pad_to=16).eval()(audio, lens)
    assert feats.shape[-1] == 112  # 101 frames padded up to a multiple of 16
    exact = MelSpectrogram(
        exact_pad=True, pad_to=0, n_window_size=400, window_size=None
    )
    feats, feat_lens = exact.eval()(audio, lens)
    assert feats.shape[-1] == audio.shape[1] // 160  # exact_pad: S // hop frames
    # NeMo's count (L + 2 pad - n_fft) // hop with pad = (512 - 160) // 2 = 176
    assert feat_lens.tolist() == [(n + 352 - 512) // 160 for n in lens.tolist()]
    assert feat_lens.tolist() == [99, 99, 19]
    zero, zero_lens = MelSpectrogram().eval()(
        torch.zeros(2, 800), torch.tensor([800, 0])
    )
    assert zero_lens.tolist() == [5, 0] and torch.isfinite(zero).all()
    assert (zero[1] == 0).all()


def test_dither_only_in_training():
    model = MelSpectrogram()
    audio, lens = _batch()
    before = audio.clone()
    eval_a, _ = model.eval()(audio, lens)
    eval_b, _ = model(audio, lens)
    assert torch.equal(eval_a, eval_b)
    train_a, _ = model.train()(audio, lens)
    train_b, _ = model(audio, lens)
    assert not torch.equal(train_a, train_b) and not torch.equal(train_a, eval_a)
    assert (train_a - eval_a).abs().max() < 0.5  # dither 1e-5 is a small perturbation
    assert torch.equal(audio, before)  # the caller's audio is not modified
    no_dither, _ = MelSpectrogram(dither=0.0).train()(audio, lens)
    torch.testing.assert_close(no_dither, eval_a)


def test_frame_splicing_and_narrowband_and_grads():
    audio, lens = _batch()
    plain, _ = MelSpectrogram().eval()(audio, lens)
    spliced, _ = MelSpectrogram(frame_splicing=3).eval()(audio, lens)
    assert spliced.shape[1] == 3 * 64  # NeMo stacks 3 identical copies
    torch.testing.assert_close(spliced[:, 128:], plain)
    # narrow-band: with probability 1 every bin at or above 4 kHz is zeroed
    nb = MelSpectrogram(nb_augmentation_prob=1.0, normalize=None, log=False, dither=0.0)
    feats, _ = nb.train()(audio, lens)
    above = (nb.fb[:, : nb.nb_max_bin] == 0).all(dim=1)  # mels living only >= 4 kHz
    assert (
        above.any() and (feats[:, above] == 0).all() and (feats[:, ~above] != 0).any()
    )
    # gradients flow only with use_grads=True, as in NeMo
    x = audio.clone().requires_grad_(True)
    assert not MelSpectrogram()(x, lens)[0].requires_grad
    MelSpectrogram(use_grads=True).eval()(x, lens)[0].sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_config_keys_errors_and_refusals():
    target = "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor"
    section = {"_target_": target, "features": 80, "n_fft": 512}
    model = MelSpectrogram.from_config(section)  # omitted keys take NeMo's defaults
    assert (
        model.fb.shape == (80, 257) and model.win_length == 320 and model.pad_to == 16
    )
    with pytest.raises(ValueError, match="unknown preprocessor key.*'n_mels'"):
        MelSpectrogram.from_config({"n_mels": 80})
    with pytest.raises(ValueError, match="window_size=None"):
        MelSpectrogram(n_window_size=400)
    with pytest.raises(ValueError, match="pad_to"):
        MelSpectrogram(pad_to="max")
    with pytest.raises(ValueError, match="normalize"):
        MelSpectrogram(normalize={"fixed_mean": [0.0], "fixed_std": [1.0]})
    with pytest.raises(ValueError, match="log_zero_guard_type"):
        MelSpectrogram(log_zero_guard_type="floor")
    with pytest.raises(ValueError, match="log_zero_guard_value"):
        MelSpectrogram(log_zero_guard_value="small")
    with pytest.raises(ValueError, match="exact_pad"):
        MelSpectrogram(exact_pad=True, window_stride=None, n_window_stride=161)
    with pytest.warns(UserWarning, match="stft_conv"):
        MelSpectrogram(stft_conv=True)
    with pytest.raises(ValueError, match="audio_lens must be in 0..100"):
        MelSpectrogram()(torch.zeros(1, 100), torch.tensor([200]))
    with pytest.raises(AssertionError, match=r"\(B, S\)"):
        MelSpectrogram()(torch.zeros(16000), torch.tensor([16000]))
