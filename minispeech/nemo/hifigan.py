"""NeMo HiFi-GAN vocoder (HifiGanModel) -> minispeech HifiGanModel.

`importer.py` dispatches `HifiGanModel` here. NeMo's sections (nemo/collections/tts/
models/hifigan.py, examples/tts/conf/hifigan/hifigan.yaml + generator/v1.yaml):
- `preprocessor`: FilterbankFeatures (NeMo's own class, `nfilt`, `n_window_size`,
  `n_window_stride`) or AudioToMelSpectrogramPreprocessor (minispeech's names);
  missing keys take FilterbankFeatures' defaults. The file's saved filterbank and
  window (`audio_to_melspec_precessor.fb/window`, sic) must equal the ones minispeech
  computes from that config; the import fails otherwise. They and
  `trg_melspec_fn.*` (the same without highfreq) are then dropped: minispeech does
  not store them.
- `generator`: Generator keys one to one (`apply_weight_init_conv_pre` changes only
  the random init and is dropped).
- `mpd` / `msd` weights: NeMo's discriminators have the paper's fixed sizes. A file
  that keeps them imports them; a file without them (inference exports, and the
  reference file) gives a model with `mpd: null, msd: null`, which synthesises but
  cannot train until discriminator sections are given.
Weight norm: NeMo files store `weight_g` / `weight_v` (torch's old hook form); spectral
norm `weight_orig` / `weight_u` / `weight_v`. They are renamed to torch's
parametrization keys (`parametrizations.weight.original0/1`, `.original`,
`.0._u`, `.0._v`); keys already in that form pass through. Every other option is
refused by name.
"""

from __future__ import annotations

import torch
from torch import nn

from minispeech.core.checkpoint import load_state_dict_checked

FILTERBANK_DEFAULTS = {  # NeMo FilterbankFeatures.__init__ defaults
    "sample_rate": 16000,
    "n_window_size": 320,
    "n_window_stride": 160,
    "window": "hann",
    "normalize": "per_feature",
    "n_fft": None,
    "preemph": 0.97,
    "nfilt": 64,
    "lowfreq": 0,
    "highfreq": None,
    "log": True,
    "log_zero_guard_type": "add",
    "log_zero_guard_value": 2**-24,
    "dither": 1e-5,
    "pad_to": 16,
    "max_duration": 16.7,
    "frame_splicing": 1,
    "exact_pad": False,
    "pad_value": 0,
    "mag_power": 2.0,
    "use_grads": False,
    "nb_augmentation_prob": 0.0,
    "nb_max_freq": 4000,
    "mel_norm": "slaney",
    "stft_exact_pad": False,
    "stft_conv": False,
}
GENERATOR_KEYS = (
    "resblock",
    "upsample_rates",
    "upsample_kernel_sizes",
    "upsample_initial_channel",
    "resblock_kernel_sizes",
    "resblock_dilation_sizes",
    "initial_input_size",
)
GENERATOR_IGNORED = ("apply_weight_init_conv_pre",)  # init only
# top-level keys that change nothing at inference or are read elsewhere
TOP_IGNORED = ("target", "nemo_version", "max_steps", "max_epochs", "denoise_strength")
TOP_IGNORED += ("sample_rate", "input_as_mel", "log_audio", "log_samples")
TRAINING_ONLY = ("train_ds", "validation_ds", "test_ds", "optim")
MEL_PREFIXES = ("audio_to_melspec_precessor.", "trg_melspec_fn.")
# torch's old hook keys -> its parametrization keys
WEIGHT_NORM_NAMES = {"weight_g": "original0", "weight_v": "original1"}
SPECTRAL_NAMES = {"weight_orig": "original", "weight_u": "0._u", "weight_v": "0._v"}


def import_hifigan(ckpt, path) -> nn.Module:
    """A read NeMo HifiGanModel checkpoint -> minispeech HifiGanModel (eval)."""
    from minispeech.tts.hifigan_model import HifiGanModel

    state = nemo_state_dict(ckpt.state_dict)
    has_discriminators = any(k.startswith(("mpd.", "msd.")) for k in state)
    try:
        model = HifiGanModel(hifigan_config(ckpt.config, has_discriminators))
    except (TypeError, ValueError, KeyError) as error:
        raise ValueError(f"{path}: {error}") from None
    check_saved_features(model, ckpt.state_dict, path)
    weights = {k: v for k, v in state.items() if not k.startswith(MEL_PREFIXES)}
    # NeMo counts steps in its trainer; minispeech in this model buffer
    weights.setdefault("trained_steps", torch.zeros((), dtype=torch.long))
    load_state_dict_checked(model, weights, strict=True, source=str(path))
    return model.eval()


def hifigan_config(cfg: dict, has_discriminators: bool) -> dict:
    """NeMo's model config -> the minispeech `model:` section of the same model."""
    known = ("preprocessor", "generator", "l1_loss_factor")
    unknown = [
        key
        for key, value in cfg.items()
        if key not in known + TOP_IGNORED + TRAINING_ONLY and value is not None
    ]
    if unknown:
        raise ValueError(f"unsupported NeMo options: {', '.join(unknown)}")
    for section in ("preprocessor", "generator"):
        if not isinstance(cfg.get(section), dict):
            raise ValueError(f"model config has no {section!r} section")
    out = {
        "_target_": "minispeech.tts.HifiGanModel",
        "preprocessor": preprocessor_section(cfg["preprocessor"]),
        "generator": generator_section(cfg["generator"]),
        "l1_loss_factor": cfg.get("l1_loss_factor", 45),
    }
    if not has_discriminators:  # inference-only file
        out.update(mpd=None, msd=None)
    return out


def _class_name(section: dict) -> str:
    return str(section.get("_target_", "")).rsplit(".", 1)[-1]


def preprocessor_section(section: dict) -> dict:
    """FilterbankFeatures (NeMo names, NeMo defaults) or AudioToMelSpectrogram-
    Preprocessor (minispeech's names) -> MelSpectrogram keyword arguments."""
    name = _class_name(section)
    values = {k: v for k, v in section.items() if k != "_target_"}
    if name == "AudioToMelSpectrogramPreprocessor":
        return values  # the same names and defaults as MelSpectrogram
    if name != "FilterbankFeatures":
        raise ValueError(
            f"preprocessor: _target_ {section.get('_target_')!r} is not supported "
            "(supported: FilterbankFeatures, AudioToMelSpectrogramPreprocessor)"
        )
    unknown = [k for k in values if k not in FILTERBANK_DEFAULTS and k != "rng"]
    if unknown:
        raise ValueError(
            f"preprocessor: unsupported NeMo options: {', '.join(unknown)}"
        )
    merged = {**FILTERBANK_DEFAULTS, **values}
    merged.pop("rng", None)
    merged["features"] = merged.pop("nfilt")
    return {"window_size": None, "window_stride": None, **merged}


def generator_section(section: dict) -> dict:
    if _class_name(section) != "Generator":
        raise ValueError(
            f"generator: _target_ {section.get('_target_')!r} is not supported "
            "(supported: nemo.collections.tts.modules.hifigan_modules.Generator)"
        )
    values = {k: v for k, v in section.items() if k != "_target_"}
    unknown = [k for k in values if k not in GENERATOR_KEYS + GENERATOR_IGNORED]
    if unknown:
        raise ValueError(f"generator: unsupported NeMo options: {', '.join(unknown)}")
    return {k: v for k, v in values.items() if k in GENERATOR_KEYS}


def nemo_state_dict(state: dict) -> dict:
    """Rename old-style weight-norm and spectral-norm keys to parametrization keys."""

    def split(key: str) -> tuple[str, str]:  # "a.b.weight_g" -> ("a.b.", "weight_g")
        head, dot, leaf = key.rpartition(".")
        return head + dot, leaf

    spectral = {split(k)[0] for k in state if split(k)[1] == "weight_orig"}
    out = {}
    for key, value in state.items():
        base, leaf = split(key)
        if base in spectral and leaf in SPECTRAL_NAMES:
            key = f"{base}parametrizations.weight.{SPECTRAL_NAMES[leaf]}"
        elif leaf in WEIGHT_NORM_NAMES:
            key = f"{base}parametrizations.weight.{WEIGHT_NORM_NAMES[leaf]}"
        out[key] = value
    return out


def check_saved_features(model, state: dict, path) -> None:
    """NeMo's saved filterbank and window must be the ones minispeech computes."""
    pre = model.audio_to_melspec_precessor
    for name, ours in (("fb", pre.fb), ("window", pre.window)):
        saved = state.get(f"audio_to_melspec_precessor.{name}")
        if saved is None:
            continue
        saved = saved.reshape(ours.shape) if saved.numel() == ours.numel() else saved
        if saved.shape != ours.shape or not torch.allclose(
            saved.float(), ours, atol=1e-6
        ):
            raise ValueError(
                f"{path}: the saved preprocessor {name} {tuple(saved.shape)} differs "
                f"from the one its config gives {tuple(ours.shape)}"
            )
