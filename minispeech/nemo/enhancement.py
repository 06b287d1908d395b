"""NeMo mask-based enhancement (EncMaskDecAudioToAudioModel) -> EnhancementModel.

`importer.py` dispatches `EncMaskDecAudioToAudioModel` here. NeMo's sections map one
to one (nemo/collections/audio/models/enhancement.py, examples/audio/conf/
masking.yaml): `encoder` AudioToSpectrogram and `decoder` SpectrogramToAudio
(fft_length, hop_length, magnitude_power, scale), `mask_estimator` MaskEstimatorRNN
(LSTM or GRU, one- or bidirectional), `mask_processor` MaskReferenceChannel and
`loss` SDRLoss. minispeech keeps NeMo's module names, so the weights load by key, the
saved analysis and synthesis windows included. NeMo's SDRLoss defaults differ from
minispeech's `sdr_loss` (scale_invariant False there), so the imported loss section
states every value. Every option that would change the computation and has no
minispeech equivalent is refused by name: inter-channel phase features, an RNN
hidden width other than num_features, mixture consistency, channel augmentation,
convolution-invariant SDR, other classes.
"""

from __future__ import annotations

from torch import nn

from minispeech.core.checkpoint import load_state_dict_checked

NAMES = {  # section -> (NeMo class name, keys kept as they are)
    "encoder": (
        "AudioToSpectrogram",
        ("fft_length", "hop_length", "magnitude_power", "scale"),
    ),
    "decoder": (
        "SpectrogramToAudio",
        ("fft_length", "hop_length", "magnitude_power", "scale"),
    ),
    "mask_processor": (
        "MaskReferenceChannel",
        ("ref_channel", "mask_min_db", "mask_max_db"),
    ),
}
RNN_KEYS = (
    "num_outputs",
    "num_subbands",
    "num_features",
    "num_layers",
    "bidirectional",
    "rnn_type",
    "dropout",
    "mag_reduction",
)
# NeMo SDRLoss defaults (not minispeech's): scale_invariant False
LOSS_DEFAULTS = {"scale_invariant": False, "remove_mean": True, "sdr_max": None}
# top-level keys that change nothing at inference or are read elsewhere
TOP_IGNORED = ("target", "nemo_version", "skip_nan_grad", "num_outputs", "sample_rate")
TOP_KEYS = ("encoder", "decoder", "mask_estimator", "mask_processor", "loss")
TRAINING_ONLY = ("train_ds", "validation_ds", "test_ds", "optim", "metrics")


def import_enhancement(ckpt, path) -> nn.Module:
    """A read NeMo EncMaskDecAudioToAudioModel checkpoint -> EnhancementModel (eval)."""
    from minispeech.enhancement.model import EnhancementModel

    try:
        model = EnhancementModel(enhancement_config(ckpt.config))
    except (TypeError, ValueError, KeyError) as error:
        raise ValueError(f"{path}: {error}") from None
    load_state_dict_checked(model, ckpt.state_dict, strict=True, source=str(path))
    return model.eval()


def enhancement_config(cfg: dict) -> dict:
    """NeMo's model config -> the minispeech `model:` section of the same model."""
    problems = [
        f"{key} (not supported)"
        for key, value in cfg.items()
        if key not in TOP_KEYS + TOP_IGNORED + TRAINING_ONLY and value is not None
    ]
    if problems:  # mixture_consistency, channel_augment, ...
        raise ValueError(f"unsupported NeMo options: {'; '.join(problems)}")
    for section in ("encoder", "decoder", "mask_estimator", "mask_processor"):
        if not isinstance(cfg.get(section), dict):
            raise ValueError(f"model config has no {section!r} section")
    out = {
        "_target_": "minispeech.enhancement.EnhancementModel",
        "sample_rate": int(cfg.get("sample_rate", 16000)),
        **{name: plain_section(name, cfg[name]) for name in NAMES},
        "mask_estimator": rnn_section(cfg["mask_estimator"]),
        "loss": loss_section(cfg.get("loss")),
    }
    n_outputs = cfg.get("num_outputs", out["mask_estimator"]["num_outputs"])
    if n_outputs != out["mask_estimator"]["num_outputs"]:
        raise ValueError(f"num_outputs={n_outputs} differs from the mask estimator's")
    return out


def _class_name(section: dict) -> str:
    return str(section.get("_target_", "")).rsplit(".", 1)[-1]


def _refuse_unknown(name: str, section: dict, known) -> None:
    unknown = [k for k in section if k not in known and k != "_target_"]
    if unknown:
        raise ValueError(f"{name}: unsupported NeMo options: {', '.join(unknown)}")


def plain_section(name: str, section: dict) -> dict:
    nemo_class, keys = NAMES[name]
    if _class_name(section) != nemo_class:
        raise ValueError(
            f"{name}: _target_ {section.get('_target_')!r} is not supported "
            f"(supported: {nemo_class})"
        )
    _refuse_unknown(name, section, keys)
    return {k: section[k] for k in keys if k in section}


def rnn_section(section: dict) -> dict:
    """MaskEstimatorRNN: NeMo's keys; defaults filled from NeMo's signature."""
    if _class_name(section) != "MaskEstimatorRNN":
        raise ValueError(
            f"mask_estimator: _target_ {section.get('_target_')!r} is not supported "
            "(supported: MaskEstimatorRNN)"
        )
    known = RNN_KEYS + ("num_hidden_features", "num_input_channels", "use_ipd")
    _refuse_unknown("mask_estimator", section, known)
    if section.get("use_ipd"):
        raise ValueError("mask_estimator: use_ipd=True (phase features) not supported")
    d = section.get("num_features", 1024)  # NeMo's defaults: 1024 features, 3 layers
    hidden = section.get("num_hidden_features")
    if hidden is not None and hidden != d:
        raise ValueError(
            f"mask_estimator: num_hidden_features={hidden} (only num_features={d})"
        )
    if section.get("mag_reduction", "rms") is None:  # |X| per channel
        raise ValueError("mask_estimator: mag_reduction=None (per-channel features)")
    defaults = {"num_features": 1024, "num_layers": 3, "bidirectional": True}
    return {
        "_target_": "minispeech.enhancement.MaskEstimatorRNN",
        **defaults,
        **{k: section[k] for k in RNN_KEYS if k in section},
    }


def loss_section(loss: dict | None) -> dict:
    """SDRLoss -> sdr_loss keys, every value stated (NeMo's defaults)."""
    loss = dict(loss or {"_target_": "SDRLoss"})
    if _class_name(loss) != "SDRLoss":
        raise ValueError(f"loss: _target_ {loss.get('_target_')!r} is not supported")
    if loss.get("convolution_invariant"):
        raise ValueError("loss: convolution_invariant=True is not supported")
    if loss.get("reduction", "mean") != "mean":
        raise ValueError(f"loss: reduction={loss['reduction']!r} (only 'mean')")
    known = (*LOSS_DEFAULTS, "weight", "eps", "reduction", "convolution_invariant")
    _refuse_unknown("loss", loss, (*known, "convolution_filter_length"))
    out = {k: loss.get(k, default) for k, default in LOSS_DEFAULTS.items()}
    out.update({k: loss[k] for k in ("weight", "eps") if loss.get(k) is not None})
    return out
