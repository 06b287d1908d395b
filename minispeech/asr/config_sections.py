"""The config sections of an ASR model and the one check of their keys.

Every section of an ASR model's config (preprocessor, spec_augment, freq_warp,
encoder, decoder, joint, loss, decoding, chunk, tokenizer, train_ds and its
augmentor, ...) is checked here before anything is built: a section's keys are the
keyword arguments of the class it builds (minus those the model passes itself) or a
fixed set of names, and a misspelt key is a one-line ConfigError naming
`model.<section>` and the nearest valid keys (`core.config.check_keys`). All sections
that do not fit are reported together, so a config written for another model class
says what is unknown and missing section by section instead of raising a TypeError
from some constructor.
"""

from __future__ import annotations

from minispeech.core.config import ConfigError, check_arguments, check_keys

# keys of the `model:` section every ASR model understands (subclasses add their own)
ASR_KEYS = {
    "_target_",
    "sample_rate",
    "labels",
    "tokenizer",
    "preprocessor",
    "spec_augment",
    "freq_warp",
    "encoder",
    "train_ds",
    "validation_ds",
    "test_ds",
    "optim",
}
TOKENIZER_KEYS = ("dir", "type", "vocab_size", "train_manifest")
CHUNK_KEYS = ("length", "overlap")  # long-audio windows, seconds (ASRModel.encode_long)
# the mel layout FrequencyWarp shares with the preprocessor (the model passes it)
WARP_LAYOUT = ("sample_rate", "features", "lowfreq", "highfreq")


def get_section(cfg: dict, dotted: str) -> dict:
    """The config section `dotted` ("decoder", "train_ds.augmentor") as a dict without
    `_target_`; {} when absent. A section that is not a mapping is a ConfigError."""
    node = cfg
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if node is None:
        return {}
    if not isinstance(node, dict):
        raise ConfigError(
            f"model.{dotted}: must be a mapping of keys, got {type(node).__name__}"
        )
    return {key: value for key, value in node.items() if key != "_target_"}


def check_section(cfg: dict, dotted: str, keys, fixed=(), required=()) -> dict:
    """The one key check of every ASR config section -> the section's values.

    `keys` is the class (or function) the section's keys are keyword arguments of,
    minus the `fixed` ones the model passes itself, or a collection of key names. A
    misspelt key is a one-line ConfigError naming `model.<section>` and the nearest
    valid keys (`core.config.check_keys`)."""
    values = get_section(cfg, dotted)
    if callable(keys):
        name = f"model.{dotted} ({keys.__name__})"
        check_arguments(keys, values, name, fixed=fixed, noun="key")
    else:
        check_keys(f"model.{dotted}", values, sorted(keys), required=required)
    return values


def check_decoding(decoding: dict, strategies=("greedy", "beam")) -> None:
    """The values of a `decoding` section: a known strategy, positive integer sizes,
    numbers for the LM weights (its keys are checked with the other sections)."""
    strategy = decoding.get("strategy")
    if strategy not in strategies:
        raise ConfigError(
            f"model.decoding.strategy {strategy!r}: use {' or '.join(strategies)}"
        )
    for key, value in decoding.items():
        bad_int = isinstance(value, bool) or not isinstance(value, int) or value < 1
        bad_number = isinstance(value, bool) or not isinstance(value, (int, float))
        if key in ("beam_size", "max_symbols") and bad_int:
            raise ConfigError(
                f"model.decoding.{key}: a positive integer, got {value!r}"
            )
        if key in ("lm_alpha", "lm_beta") and bad_number:
            raise ConfigError(f"model.decoding.{key}: a number, got {value!r}")
        if key in ("lm_path", "lexicon") and not isinstance(value, (str, type(None))):
            raise ConfigError(f"model.decoding.{key}: a file path, got {value!r}")
    if decoding.get("lexicon") and strategy == "greedy":
        raise ConfigError(
            "model.decoding.lexicon: constrains a beam; set strategy=beam"
        )


def check_sections(name: str, cfg: dict, model_keys, sections: dict) -> None:
    """Check the `model:` section's own keys (`model_keys`) and every section of
    `sections` ({section: (class or key names, fixed, required)}). A plain section
    that is absent is skipped; an absent class section is checked as empty (its
    required arguments must have defaults). One problem is one line; several are
    listed one a line under `the config does not fit <name>:`."""
    problems = []
    try:
        check_keys(f"model ({name})", cfg, sorted(model_keys))
    except ConfigError as error:
        problems.append(str(error))
    for section, (keys, fixed, required) in sections.items():
        if not callable(keys) and not get_section(cfg, section):
            continue
        try:
            check_section(cfg, section, keys, fixed, required)
        except ConfigError as error:
            problems.append(str(error))
    if len(problems) > 1:
        problems.insert(0, f"the config does not fit {name}:")
    if problems:
        raise ConfigError("\n".join(problems))
