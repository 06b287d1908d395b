"""Read NeMo config sections into minispeech modules: fill NeMo's defaults, refuse the
rest.

A `.nemo` file's `model_config.yaml` may come from any NeMo version or recipe: a section
may omit keys that equal the class defaults, and it may use options minispeech does not
implement. Each builder here (1) refuses a `_target_` it cannot map, (2) fills in the
defaults of NeMo's class (NeMo 2.x/3.0 `ConformerEncoder.__init__`), (3) refuses, by
name and value, every option that would change the computation and has no minispeech
equivalent, and (4) builds the module. Options that change only speed or memory (Triton
kernels, conv chunking) are dropped.
"""

import inspect

from minispeech.nn.conformer import ConformerEncoder

CONFORMER_TARGETS = (
    "nemo.collections.asr.modules.ConformerEncoder",
    "nemo.collections.asr.modules.conformer_encoder.ConformerEncoder",
    "minispeech.nn.ConformerEncoder",
    "minispeech.nn.conformer.ConformerEncoder",
)
PREPROCESSOR_TARGETS = (
    "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
    "nemo.collections.asr.modules.audio_preprocessing.AudioToMelSpectrogramPreprocessor",
    "minispeech.audio.MelSpectrogram",
    "minispeech.audio.features.MelSpectrogram",
)

# NeMo ConformerEncoder keys minispeech has no argument for, with NeMo's default:
# a config may carry them only at these values (they change the computation).
UNSUPPORTED_AT_DEFAULT = {
    "causal_downsampling": False,
    "reduction": None,
    "att_context_probs": None,
    "att_chunk_context_size": None,
    "conv_context_style": "regular",
    "global_tokens": 0,
    "global_tokens_spacing": 1,
    "global_attn_separate": False,
    "rope_base": 10000.0,
    "rotary_fraction": 1.0,
}
# keys that matter only together with an unsupported option above, or only for speed,
# memory or multi-GPU bookkeeping: accepted with any value and dropped
IGNORED = (
    "reduction_position",  # used only when `reduction` is set
    "reduction_factor",  # idem
    "subsampling_conv_chunking_factor",  # splits the conv batch for memory, same result
    "use_pytorch_sdpa_backends",  # kernel choice for the fused path, same result
    "sync_max_audio_length",  # all-reduce of a buffer size across GPUs
    "use_triton",  # fused subsampling kernels, same result
)


def _defaults(cls) -> dict:
    params = inspect.signature(cls.__init__).parameters.values()
    return {
        p.name: p.default for p in params if p.default is not inspect.Parameter.empty
    }


def _check_target(section: dict, allowed: tuple, what: str) -> None:
    target = section.get("_target_")
    if target is not None and target not in allowed:
        raise ValueError(
            f"{what}: _target_ {target!r} is not supported; "
            f"minispeech maps {allowed[0]}"
        )


def nemo_encoder_kwargs(cfg: dict) -> dict:
    """A NeMo `encoder:` section -> ConformerEncoder keyword arguments (all of them)."""
    _check_target(cfg, CONFORMER_TARGETS, "encoder")
    known = set(_defaults(ConformerEncoder)) | {"feat_in", "n_layers", "d_model"}
    problems, kwargs = [], {}
    for key, value in cfg.items():
        if key == "_target_" or key in IGNORED:
            continue
        if key in UNSUPPORTED_AT_DEFAULT:
            if value != UNSUPPORTED_AT_DEFAULT[key]:
                problems.append(
                    f"{key}={value!r} (only {UNSUPPORTED_AT_DEFAULT[key]!r})"
                )
        elif key in known:
            kwargs[key] = value
        else:
            problems.append(f"{key} (unknown key)")
    if "att_context_size" in kwargs:
        kwargs["att_context_size"] = _inference_context(kwargs["att_context_size"])
    problems += _unsupported_values(kwargs)
    missing = [k for k in ("feat_in", "n_layers", "d_model") if k not in kwargs]
    problems += [f"{key} (required, missing)" for key in missing]
    if problems:
        raise ValueError("encoder: unsupported NeMo options: " + "; ".join(problems))
    return {**_defaults(ConformerEncoder), **kwargs}


def _inference_context(att_context_size):
    """NeMo allows a list of [left, right] pairs (multi-lookahead training); at
    inference it uses the first one, and so does minispeech."""
    if att_context_size and isinstance(att_context_size[0], (list, tuple)):
        return list(att_context_size[0])
    return att_context_size


def _unsupported_values(kwargs: dict) -> list[str]:
    """Names of option values that NeMo has and minispeech does not implement."""
    choices = {
        "subsampling": (None, "striding", "dw_striding"),
        "self_attention_model": ("rel_pos", "abs_pos"),
        "conv_norm_type": ("batch_norm", "layer_norm"),
        "att_context_style": ("regular", "chunked_limited"),
    }
    return [
        f"{key}={kwargs[key]!r} (supported: {', '.join(map(repr, allowed))})"
        for key, allowed in choices.items()
        if key in kwargs and kwargs[key] not in allowed
    ]


def encoder_from_nemo_config(cfg: dict) -> ConformerEncoder:
    """Build the encoder a NeMo `encoder:` section describes (see module docstring)."""
    return ConformerEncoder(**nemo_encoder_kwargs(dict(cfg)))


def preprocessor_from_nemo_config(cfg: dict):
    """Build `MelSpectrogram` from a NeMo `preprocessor:` section (NeMo's keys)."""
    from minispeech.audio import MelSpectrogram

    _check_target(cfg, PREPROCESSOR_TARGETS, "preprocessor")
    return MelSpectrogram(**{k: v for k, v in cfg.items() if k != "_target_"})
