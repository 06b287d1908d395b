"""SALMModel's config checks: each reads one `model.` field and names it in its error.

Kept apart from the model so that salm_model.py holds the network and its steps."""

from __future__ import annotations

from minispeech.core.config import ConfigError, check_keys
from minispeech.speechlm.ctc_compress import MODES as COMPRESS_MODES
from minispeech.speechlm.tokenizer import AUDIO

LORA_KEYS = ("rank", "alpha", "dropout", "patterns")


def check_encoder_width(cfg: dict, width: int) -> None:
    """The adapter was built for the encoder width of the first ASR file; a model
    file names it (`encoder_width`), so another ASR file is refused by name."""
    expected = cfg.setdefault("encoder_width", width)
    if expected != width:
        raise ConfigError(
            f"model.asr_model: its encoder is {width} wide, this model's adapter "
            f"expects encoder_width {expected}"
        )


def encoder_layers(cfg: dict, encoder) -> list[int] | None:
    """`encoder_layers` as indices into the N + 1 hidden states (0: the input of the
    first layer, N: the last layer's output; negative from the end), or None for the
    encoder's output as it is."""
    layers = cfg.get("encoder_layers")
    if layers is None:
        return None
    n_layers = len(getattr(encoder, "layers", ()))
    if not n_layers:
        raise ConfigError(
            f"model.encoder_layers: the encoder {type(encoder).__name__} "
            "has no layers to read hidden states from"
        )
    if (
        not isinstance(layers, list)
        or not layers
        or not all(isinstance(i, int) and not isinstance(i, bool) for i in layers)
    ):
        raise ConfigError(
            f"model.encoder_layers: a non-empty list of layer indices, not {layers!r}"
        )
    bad = [i for i in layers if not -(n_layers + 1) <= i <= n_layers]
    if bad:
        raise ConfigError(
            f"model.encoder_layers: {bad} out of range; the encoder has {n_layers} "
            f"layers, so hidden states 0..{n_layers} (or -{n_layers + 1}..-1)"
        )
    return [i % (n_layers + 1) for i in layers]


def ctc_options(cfg: dict, asr, soft_tokens: bool = False) -> tuple[str, bool]:
    """`ctc_compress` (a mode of ctc_compress.py) and `ctc_posteriors` (a bool);
    either needs an ASR model with a CTC head (`head_log_probs`). Soft tokens need
    the posteriors and default to one frame per recognized piece (drop_blank)."""
    compress = cfg.get("ctc_compress", "drop_blank" if soft_tokens else "none")
    if compress not in COMPRESS_MODES:
        raise ConfigError(
            f"model.ctc_compress: one of {COMPRESS_MODES}, not {compress!r}"
        )
    posteriors = cfg.get("ctc_posteriors", soft_tokens)
    if not isinstance(posteriors, bool):
        raise ConfigError(f"model.ctc_posteriors: true or false, not {posteriors!r}")
    if soft_tokens and not posteriors:
        raise ConfigError("model.ctc_posteriors: soft_tokens are made of them")
    if (
        posteriors
        and cfg.get("encoder_layers")
        and cfg.get("encoder_layer_mix") == "weighted"
    ):
        raise ConfigError(
            "model.encoder_layer_mix: weighted averages hidden states of one width; "
            "with ctc_posteriors (or soft_tokens) the frames also carry the "
            "posteriors, so use concat"
        )
    if (compress != "none" or posteriors) and not hasattr(asr, "head_log_probs"):
        raise ConfigError(
            "model.ctc_compress / model.ctc_posteriors: need an ASR model file "
            f"with a CTC head; {type(asr).__name__} has none"
        )
    return compress, posteriors


def soft_token_temperature(cfg: dict, asr, tokenizer) -> float | None:
    """`soft_tokens` (soft_tokens.py): absent or false (off), true, or
    {temperature: tau > 0}; -> tau, or None when off. The ASR model must have a CTC
    head over the LM's own text pieces (the same SentencePiece model)."""
    value = cfg.get("soft_tokens", False)
    if value is False or value is None:
        return None
    value = {} if value is True else value
    if not isinstance(value, dict):
        raise ConfigError(
            f"model.soft_tokens: true, false or {{temperature: t}}, not {value!r}"
        )
    check_keys("model.soft_tokens", value, ("temperature",))
    tau = value.get("temperature", 1.0)
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or tau <= 0:
        raise ConfigError(f"model.soft_tokens.temperature: a number > 0, not {tau!r}")
    proto = getattr(getattr(asr, "tokenizer", None), "model_proto", None)
    if not hasattr(asr, "head_log_probs") or proto != tokenizer.text.model_proto:
        raise ConfigError(
            "model.soft_tokens: needs an ASR model whose CTC head predicts the LM's "
            "own text pieces; train the LM with model.tokenizer.dir set to the ASR "
            "model's SentencePiece folder (experiments/tokenizers/tinyspeech_bpe64)"
        )
    if cfg.get("adapter", {}).get("reduction", "none") != "none":
        raise ConfigError(
            "model.adapter.reduction: none with soft_tokens (one frame a piece)"
        )
    return float(tau)


def loss_weight(cfg: dict, key: str) -> float:
    """A loss weight >= 0 (0 when absent: the loss is off)."""
    weight = cfg.get(key, 0.0)
    if isinstance(weight, bool) or not (
        isinstance(weight, (int, float)) and weight >= 0
    ):
        raise ConfigError(f"model.{key}: a loss weight >= 0, not {weight!r}")
    return float(weight)


def choice(cfg: dict, key: str, choices: tuple, default: str) -> str:
    """A field that takes one of `choices`."""
    value = cfg.get(key, default)
    if value not in choices:
        raise ConfigError(f"model.{key}: one of {choices}, not {value!r}")
    return value


def prompt_format(cfg: dict, default: str) -> str:
    """`prompt_format` (default: the LM's, the format it learned its questions in)
    with one audio placeholder and {question}."""
    fmt = str(cfg.get("prompt_format", default))
    if fmt.count(AUDIO) != 1 or "{question}" not in fmt:
        raise ConfigError(
            f"model.prompt_format: needs one {AUDIO} and {{question}}, got {fmt!r}"
        )
    return fmt


def lora_settings(lora_cfg) -> dict | None:
    """The `lora` section as add_lora's patterns, rank, alpha and dropout (None: no
    LoRA); by default on the LM's query and value projections."""
    if not lora_cfg:
        return None
    if not isinstance(lora_cfg, dict):
        raise ConfigError(f"model.lora: a mapping of {LORA_KEYS}, not {lora_cfg!r}")
    check_keys("model.lora", lora_cfg, LORA_KEYS)
    default = ["lm.layers.*.self_attn.linear_q", "lm.layers.*.self_attn.linear_v"]
    return {
        "patterns": list(lora_cfg.get("patterns", default)),
        "rank": int(lora_cfg.get("rank", 8)),
        "alpha": float(lora_cfg.get("alpha", 16)),
        "dropout": float(lora_cfg.get("dropout", 0.0)),
    }
