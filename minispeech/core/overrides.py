"""Dotted command-line overrides of a config: NeMo's `model.optim.lr=0.001`.

The value is parsed with `ast.literal_eval` as in nanoGPT's configurator and minGPT's
`merge_from_args`, then as Hydra's unquoted list or dict (`[white,pink]`, a YAML flow
collection), and falls back to the raw string; a key keeps its kind (a string key
stays a string, a list takes a list). Overriding a key that does not exist is an error
that names the nearest keys (a typo must not silently start a run); `+a.b=value` adds
a new key (Hydra's syntax).
"""

from __future__ import annotations

import ast
import copy
import difflib
from typing import Any, Iterable

import yaml

from minispeech.errors import ConfigError

# The YAML spellings a user types on the command line, read as the YAML file would read
# them.
_YAML_WORDS = {"true": True, "false": False, "null": None, "none": None, "~": None}


def apply_overrides(cfg: dict, overrides: Iterable[str], source: str = "") -> dict:
    """Return a copy of `cfg` with each `a.b.c=value` (or `+a.b.c=value`) applied."""
    cfg = copy.deepcopy(cfg)
    for item in overrides:
        _apply_one(cfg, item, source)
    return cfg


def _apply_one(cfg: dict, item: str, source: str) -> None:
    where = f"{source}: " if source else ""
    if "=" not in item:
        raise ConfigError(f"{where}override {item!r} is not of the form key=value")
    key, text = item.split("=", 1)
    adding = key.startswith("+")
    parts = key.lstrip("+").strip().split(".")
    if not all(parts):
        raise ConfigError(f"{where}override {item!r}: empty key in {key!r}")
    node = cfg
    for depth, part in enumerate(parts[:-1]):
        if adding and part not in node:
            node[part] = {}
        if part not in node or not isinstance(node[part], dict):
            _unknown_key(cfg, ".".join(parts[: depth + 1]), item, where)
        node = node[part]
    last = parts[-1]
    dotted = ".".join(parts)
    if adding and last in node:
        raise ConfigError(
            f"{where}override {item!r}: {dotted} already exists; drop the '+'"
        )
    if not adding and last not in node:
        _unknown_key(cfg, dotted, item, where)
    node[last] = _parse_value(text, node.get(last), dotted, where)


def _unknown_key(cfg: dict, dotted: str, item: str, where: str) -> None:
    near = difflib.get_close_matches(dotted, list(_dotted_keys(cfg)), n=3, cutoff=0.5)
    hint = f"; nearest existing keys: {', '.join(near)}" if near else ""
    raise ConfigError(
        f"{where}override {item!r}: unknown key {dotted!r}{hint} "
        f"(use +{dotted}=... to add a new key)"
    )


def _dotted_keys(cfg: dict, prefix: str = ""):
    for key, value in cfg.items():
        yield prefix + str(key)
        if isinstance(value, dict):
            yield from _dotted_keys(value, f"{prefix}{key}.")


def _parse_value(text: str, old: Any, dotted: str, where: str) -> Any:
    """A Python literal, YAML word (true/null) or string, of the old value's type."""
    text = text.strip()
    if isinstance(old, str):
        return _unquote(text)  # a string key stays a string: name=2024 is "2024"
    if text.lower() in _YAML_WORDS:
        value = _YAML_WORDS[text.lower()]
    else:
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            value = _flow_collection(text)
    if old is None or value is None or _same_kind(old, value):
        return value
    raise ConfigError(
        f"{where}override {dotted}={text}: wrong type, expected "
        f"{type(old).__name__} like the current value {old!r}, "
        f"got {type(value).__name__}"
    )


def _flow_collection(text: str) -> Any:
    """Hydra's unquoted form of a list or dict (`[white,pink]`, `{a: 1}`) read as a
    YAML flow collection; any other text stays the raw string."""
    if text[:1] in "[{" and text[-1:] in "]}":
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            return text
        if isinstance(value, (list, dict)):
            return value
    return text


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _same_kind(old: Any, new: Any) -> bool:
    if isinstance(old, bool) or isinstance(new, bool):
        return isinstance(old, bool) and isinstance(new, bool)
    if isinstance(old, float) and isinstance(new, int):
        return True  # lr=1 means 1.0
    if isinstance(old, (list, tuple)) and isinstance(new, (list, tuple)):
        return True
    return isinstance(new, type(old))
