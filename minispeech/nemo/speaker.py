"""NeMo speaker models (EncDecSpeakerLabelModel: TitaNet, ECAPA-TDNN) -> SpeakerModel.

`importer.py` dispatches `EncDecSpeakerLabelModel` here. The NeMo config's sections
map onto SpeakerModel's: `preprocessor` as for ASR (config.py), `encoder`
(ConvASREncoder -> TitaNetEncoder, ECAPAEncoder -> ECAPAEncoder with NeMo's unmasked
padding), `decoder` (SpeakerDecoder: pooling mode, embedding sizes, attention
channels) and `loss` (AngularSoftmaxLoss -> "angular" with NeMo's defaults s = 20,
m = 1.35 when the file omits them; CrossEntropyLoss -> "cross_entropy"). minispeech
keeps NeMo's module names, so the weights map by identity; the preprocessor's saved
window and filterbank are recomputed, not loaded. Speaker names come from
`train_ds.labels` when the file has them, else "0".."C-1". Every option that would
change the computation and has no minispeech equivalent is refused by name.
`spec_augment` (training only) is not carried over.
"""

from torch import nn

from minispeech.core.checkpoint import load_state_dict_checked
from minispeech.nemo.config import preprocessor_from_nemo_config

RECOMPUTED = ("preprocessor.featurizer.window", "preprocessor.featurizer.fb")
ENCODERS = {  # NeMo class name -> (minispeech target, keys kept, keys at a default)
    "ConvASREncoder": (
        "minispeech.speaker.TitaNetEncoder",
        ("feat_in", "jasper", "activation", "conv_mask"),
        {
            "normalization_mode": "batch",
            "residual_mode": "add",
            "frame_splicing": 1,
            "quantize": False,
        },
    ),
    "ECAPAEncoder": (
        "minispeech.speaker.ECAPAEncoder",
        ("feat_in", "filters", "kernel_sizes", "dilations", "scale"),
        {"res2net": False},
    ),
}
# keys that change nothing at inference (initialisation, group-norm groups unused
# with batch norm): accepted with any value and dropped
IGNORED = ("init_mode", "norm_groups", "res2net_scale")
DECODER_KEYS = ("emb_sizes", "pool_mode", "attention_channels")


def import_speaker(ckpt, path) -> nn.Module:
    """A read NeMo EncDecSpeakerLabelModel checkpoint -> SpeakerModel (eval)."""
    from minispeech.speaker import SpeakerModel

    try:
        model = SpeakerModel(speaker_config(ckpt.config))
    except (TypeError, ValueError, KeyError) as error:
        raise ValueError(f"{path}: {error}") from None
    state = {k: v for k, v in ckpt.state_dict.items() if k not in RECOMPUTED}
    load_state_dict_checked(model, state, strict=True, source=str(path))
    return model.eval()


def speaker_config(cfg: dict) -> dict:
    """NeMo's model config -> the minispeech `model:` section of the same model."""
    for section in ("preprocessor", "encoder", "decoder"):
        if not isinstance(cfg.get(section), dict):
            raise ValueError(f"model config has no {section!r} section")
    preprocessor = {k: v for k, v in cfg["preprocessor"].items() if k != "_target_"}
    preprocessor_from_nemo_config(cfg["preprocessor"])  # refuses what it cannot map
    encoder = encoder_section(cfg["encoder"])
    decoder = decoder_section(cfg["decoder"], encoder)
    train_ds = cfg.get("train_ds") or {}
    n_classes = int(cfg["decoder"]["num_classes"])
    labels = train_ds.get("labels")
    if not isinstance(labels, list) or len(labels) != n_classes:
        labels = [str(k) for k in range(n_classes)]
    return {
        "_target_": "minispeech.speaker.SpeakerModel",
        "sample_rate": preprocessor.get(
            "sample_rate", train_ds.get("sample_rate", 16000)
        ),
        "labels": [str(name) for name in labels],
        "preprocessor": preprocessor,
        "encoder": encoder,
        "decoder": decoder,
        "loss": loss_section(cfg.get("loss")),
    }


def _class_name(section: dict) -> str:
    return str(section.get("_target_", "")).rsplit(".", 1)[-1]


def encoder_section(enc: dict) -> dict:
    name = _class_name(enc)
    if name not in ENCODERS:
        raise ValueError(
            f"encoder: _target_ {enc.get('_target_')!r} is not supported "
            f"(supported: {', '.join(ENCODERS)})"
        )
    target, kept, at_default = ENCODERS[name]
    problems = [
        f"{key}={value!r} (only {at_default[key]!r})"
        for key, value in enc.items()
        if key in at_default and value != at_default[key]
    ]
    problems += [
        f"{key} (unknown key)"
        for key in enc
        if key not in kept
        and key not in at_default
        and key not in IGNORED
        and key != "_target_"
    ]
    if problems:
        raise ValueError(f"encoder: unsupported NeMo options: {'; '.join(problems)}")
    out = {"_target_": target, **{k: enc[k] for k in kept if k in enc}}
    if name == "ECAPAEncoder":
        out["mask_padding"] = False  # NeMo lets padding reach the valid frames
    return out


def decoder_section(dec: dict, encoder: dict) -> dict:
    if _class_name(dec) not in ("SpeakerDecoder", ""):
        raise ValueError(f"decoder: _target_ {dec['_target_']!r} is not supported")
    known = set(DECODER_KEYS) | {"feat_in", "num_classes", "angular", "_target_"}
    unknown = [k for k in dec if k not in known and k not in IGNORED]
    if unknown:
        raise ValueError(f"decoder: unsupported NeMo options: {', '.join(unknown)}")
    return {k: dec[k] for k in DECODER_KEYS if k in dec}


def loss_section(loss: dict | None) -> dict:
    """AngularSoftmaxLoss (scale, margin) or CrossEntropyLoss (NeMo's default)."""
    loss = dict(loss or {})
    name = _class_name(loss)
    if "angular" in str(loss.get("_target_", "")).lower():
        extra = set(loss) - {"_target_", "scale", "margin"}
        if extra:
            raise ValueError(f"loss: unsupported options {sorted(extra)}")
        scale, margin = loss.get("scale", 20.0), loss.get("margin", 1.35)
        return {"name": "angular", "scale": scale, "margin": margin}
    if name in ("", "CrossEntropyLoss"):
        if loss.get("weight") is not None:
            raise ValueError("loss: weight (class weights) is not supported")
        return {"name": "cross_entropy"}
    raise ValueError(f"loss: _target_ {loss['_target_']!r} is not supported")
