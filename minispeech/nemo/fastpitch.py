"""NeMo FastPitch (FastPitchModel with learn_alignment) -> minispeech FastPitchModel.

`importer.py` dispatches `FastPitchModel` here. NeMo's sections map one to one
(nemo/collections/tts/models/fastpitch.py, examples/tts/conf/fastpitch_align_v1.05
.yaml): `text_tokenizer` EnglishCharsTokenizer -> `tokenizer`, `preprocessor`
AudioToMelSpectrogramPreprocessor -> MelSpectrogram, `input_fft` / `output_fft`
FFTransformerEncoder / FFTransformerDecoder, `alignment_module` AlignmentEncoder,
`duration_predictor` / `pitch_predictor` TemporalPredictor. Sizes minispeech derives
itself (vocabulary, embedding width, mel channels) must agree with the file. Padding
is handled as NeMo 3.0 does (`mask_padding: false`, see fft_transformer.py), so a
padded batch gives NeMo's numbers. minispeech keeps NeMo's module names, so weights
load by key, minus what is derived or repeated: NeMo stores the aligner twice
(`aligner.*` and `fastpitch.aligner.*`, one module), the positional `inv_freq`, zero
`pitch_mean`/`pitch_std` buffers and the preprocessor's window and filterbank.
Refused by name: phoneme tokenizers, speaker and energy conditioning, pre-LN
transformers, `learn_alignment: false`. Dropped: dataset and pitch statistics
(data-side), `bin_loss_warmup_epochs` (minispeech ramps by steps) and the text
normalizer (minispeech normalises no text; its tokenizer refuses digits and symbols
instead of misreading them).
"""

from __future__ import annotations

import torch
from torch import nn

from minispeech.core.checkpoint import load_state_dict_checked

FFT_KEYS = (
    "n_layer", "n_head", "d_model", "d_head", "d_inner", "kernel_size", "dropout",
    "dropatt", "dropemb",
)  # fmt: skip
SECTIONS = {  # section -> (NeMo class, keys kept, derived keys: minispeech's name)
    "input_fft": ("FFTransformerEncoder", FFT_KEYS, {"d_embed": "d_model"}),
    "output_fft": ("FFTransformerDecoder", FFT_KEYS, {}),
    "alignment_module": (
        "AlignmentEncoder",
        ("n_att_channels", "temperature"),
        {"n_text_channels": "d_model", "n_mel_channels": "n_mels"},
    ),
    "duration_predictor": (
        "TemporalPredictor",
        ("filter_size", "kernel_size", "dropout", "n_layers"),
        {"input_size": "d_model"},
    ),
}
SECTIONS["pitch_predictor"] = SECTIONS["duration_predictor"]
# NeMo keys accepted only at these values (others change the computation)
AT_DEFAULT = {"pre_lnorm": False, "condition_types": [], "n_embed": None}
TOP_KEPT = ("sample_rate", "max_token_duration", "pitch_embedding_kernel_size")
TOP_KEPT += ("min_token_duration", "dur_loss_scale", "pitch_loss_scale")
TOP_KEPT += ("aligner_loss_scale",)
TOP_DROPPED = (
    "target", "nemo_version", "train_ds", "validation_ds", "test_ds", "optim",
    "pitch_fmin", "pitch_fmax", "pitch_mean", "pitch_std", "n_window_size",
    "n_window_stride", "n_fft", "lowfreq", "highfreq", "window", "text_normalizer",
    "text_normalizer_call_kwargs", "bin_loss_warmup_epochs", "symbols_embedding_dim",
    "n_mel_channels", "learn_alignment", "n_speakers", "max_token_length",
)  # fmt: skip
TOKENIZER_KEYS = ("punct", "apostrophe", "pad_with_space")
NOT_LOADED = ("fastpitch.pitch_mean", "fastpitch.pitch_std", "preprocessor.")


def import_fastpitch(ckpt, path) -> nn.Module:
    """A read NeMo FastPitchModel checkpoint -> FastPitchModel (eval)."""
    from minispeech.tts.fastpitch_model import FastPitchModel

    try:
        model = FastPitchModel(fastpitch_config(ckpt.config))
    except (TypeError, ValueError, KeyError) as error:
        raise ValueError(f"{path}: {error}") from None
    state = fastpitch_state_dict(ckpt.state_dict, path)
    state["n_train_steps"] = model.n_train_steps
    load_state_dict_checked(model, state, strict=True, source=str(path))
    return model.eval()


def fastpitch_config(cfg: dict) -> dict:
    """NeMo's model config -> the minispeech `model:` section of the same model."""
    refuse_top_level(cfg)
    pre = {k: v for k, v in cfg["preprocessor"].items() if k != "_target_"}
    if _class_name(cfg["preprocessor"]) != "AudioToMelSpectrogramPreprocessor":
        raise ValueError(f"preprocessor: {cfg['preprocessor'].get('_target_')!r}")
    sizes = {"d_model": cfg["input_fft"]["d_model"], "n_mels": pre.get("features", 64)}
    checks = {"symbols_embedding_dim": "d_model", "n_mel_channels": "n_mels"}
    for key, name in checks.items():
        if cfg.get(key) is not None and cfg[key] != sizes[name]:
            raise ValueError(f"{key}={cfg[key]} differs from {name}={sizes[name]}")
    out = {"_target_": "minispeech.tts.FastPitchModel"}
    out.update({k: cfg[k] for k in TOP_KEPT if cfg.get(k) is not None})
    out["tokenizer"] = tokenizer_section(cfg.get("text_tokenizer") or {})
    out["preprocessor"] = pre
    out.update({name: section(name, cfg[name], sizes) for name in SECTIONS})
    for name in ("input_fft", "output_fft", "duration_predictor", "pitch_predictor"):
        out[name]["mask_padding"] = False  # NeMo 3.0's padding (module docstring)
    return out


def refuse_top_level(cfg: dict) -> None:
    problems = [f"{k} (not supported)" for k in cfg if not _known_top(k, cfg[k])]
    if cfg.get("learn_alignment") is not True:
        problems.append("learn_alignment=False (external durations; not supported)")
    if (cfg.get("n_speakers") or 1) > 1:
        problems.append(f"n_speakers={cfg['n_speakers']} (speaker embeddings)")
    missing = [name for name in ("preprocessor", *SECTIONS) if name not in cfg]
    problems += [f"{name} (missing section)" for name in missing]
    if problems:
        raise ValueError(f"unsupported NeMo options: {'; '.join(problems)}")


def _known_top(key: str, value) -> bool:
    known = (*TOP_KEPT, *TOP_DROPPED, "text_tokenizer", "preprocessor", *SECTIONS)
    return key in known or value is None  # energy_*, speaker_* at None are fine


def _class_name(section: dict) -> str:
    return str(section.get("_target_", "")).rsplit(".", 1)[-1]


def tokenizer_section(tok: dict) -> dict:
    if _class_name(tok) != "EnglishCharsTokenizer":
        raise ValueError(
            f"text_tokenizer: {tok.get('_target_')!r} is not supported (supported: "
            "EnglishCharsTokenizer; phoneme tokenizers are not)"
        )
    extra = [k for k in tok if k not in (*TOKENIZER_KEYS, "_target_") and tok[k]]
    if extra:
        raise ValueError(f"text_tokenizer: unsupported options {', '.join(extra)}")
    return {k: tok[k] for k in TOKENIZER_KEYS if k in tok}


def section(name: str, values: dict, sizes: dict) -> dict:
    """One network section: check the class, the derived sizes and the options."""
    nemo_class, kept, derived = SECTIONS[name]
    if _class_name(values) != nemo_class:
        raise ValueError(
            f"{name}: _target_ {values.get('_target_')!r} is not supported "
            f"(supported: {nemo_class})"
        )
    problems = []
    for key, value in values.items():
        if key in derived:
            if value is not None and value != sizes[derived[key]]:
                problems.append(f"{key}={value} (must equal {derived[key]})")
        elif key in AT_DEFAULT:
            if value not in (AT_DEFAULT[key], None):
                problems.append(f"{key}={value!r} (only {AT_DEFAULT[key]!r})")
        elif key not in (*kept, "_target_", "padding_idx"):
            problems.append(f"{key} (unknown key)")
    if problems:
        raise ValueError(f"{name}: unsupported NeMo options: {'; '.join(problems)}")
    return {k: values[k] for k in kept if k in values}


def fastpitch_state_dict(state: dict, path) -> dict:
    """NeMo's weights -> minispeech keys: the aligner once, derived buffers dropped."""
    out = {}
    for key, value in state.items():
        if key.startswith("aligner."):
            twin = state.get(f"fastpitch.{key}")
            if twin is None or not torch.equal(twin, value):
                raise ValueError(f"{path}: {key} differs from fastpitch.{key}")
        elif not key.startswith(NOT_LOADED) and not key.endswith("pos_emb.inv_freq"):
            out[key] = value
    return out
