"""Configs: plain YAML, dotted command-line overrides and a safe `_target_` builder.

A config is a nested dict read with `yaml.safe_load` (no tags, no interpolation, no
environment variables). Overrides use NeMo's dotted form, `model.optim.lr=0.001`; the
value is parsed with `ast.literal_eval` as in nanoGPT's configurator and minGPT's
`merge_from_args`, and falls back to the raw string. Overriding a key that does not
exist is an error (a typo must not silently start a run); `+a.b=value` adds a new key
(Hydra's syntax). `instantiate({"_target_": "minispeech.x.Class", ...})` imports the
class and calls it with the other keys; `_target_`s outside `minispeech.` are refused
unless the caller trusts the config, because a config read from a downloaded checkpoint
must not be able to import and run arbitrary code.

Differs from Hydra/OmegaConf: no `${...}` interpolation, no recursive instantiation (a
model builds its own sub-modules from its section, so every constructor call is visible
in code).
"""

from __future__ import annotations

import ast
import copy
import difflib
import importlib
import inspect
from pathlib import Path
from typing import Any, Iterable

import yaml

ALLOWED_PREFIX = "minispeech."
# The YAML spellings a user types on the command line, read as the YAML file would read
# them.
_YAML_WORDS = {"true": True, "false": False, "null": None, "none": None, "~": None}


class ConfigError(ValueError):
    """A config, override or `_target_` that cannot be used; the message says where."""


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> dict:
    """Read a YAML config (safe loader only) and apply dotted `key=value` overrides."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config: {error}") from None
    try:
        cfg = yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = " ".join(p for p in (error.context, error.problem) if p)
        raise ConfigError(f"{where}: malformed YAML: {problem}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: malformed YAML: {error}") from None
    if cfg is None:
        cfg = {}
    if not isinstance(cfg, dict):
        raise ConfigError(
            f"{path}: the top level must be a mapping, got {type(cfg).__name__}"
        )
    return apply_overrides(cfg, overrides, source=str(path))


# config keys that name data files; load_recipe anchors relative ones at a root folder
DATA_PATH_KEYS = ("manifest_filepath", "train_manifest")


def load_recipe(
    path: str | Path, root: str | Path, exp_dir: str | Path, **trainer: Any
) -> dict:
    """A shipped recipe set up for a short run from anywhere (tutorials, tests).

    Relative data paths (`manifest_filepath`, `train_manifest`) are made absolute
    against `root` (the repository), the experiment goes to a fresh `exp_dir`, the
    progress bar is off, and `trainer` keys (max_steps=40, ...) replace the recipe's.
    """
    cfg = load_config(path)
    _anchor_data_paths(cfg, Path(root))
    cfg.setdefault("trainer", {}).update(enable_progress_bar=False, **trainer)
    cfg.setdefault("exp_manager", {}).update(
        exp_dir=str(exp_dir), resume_if_exists=False
    )
    return cfg


def _anchor_data_paths(cfg: Any, root: Path) -> None:
    if isinstance(cfg, dict):
        for key, value in cfg.items():
            if key in DATA_PATH_KEYS and isinstance(value, str):
                cfg[key] = str(value if Path(value).is_absolute() else root / value)
            else:
                _anchor_data_paths(value, root)
    elif isinstance(cfg, list):
        for item in cfg:
            _anchor_data_paths(item, root)


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
            value = text
    if old is None or value is None or _same_kind(old, value):
        return value
    raise ConfigError(
        f"{where}override {dotted}={text}: wrong type, expected "
        f"{type(old).__name__} like the current value {old!r}, "
        f"got {type(value).__name__}"
    )


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


def locate(target: str, *, trust_targets: bool = False) -> Any:
    """Import a dotted `_target_` path (only `minispeech.*` unless trusted)."""
    if not isinstance(target, str) or "." not in target:
        raise ConfigError(
            f"_target_ must be a dotted path like minispeech.x.Class: {target!r}"
        )
    if not trust_targets and not target.startswith(ALLOWED_PREFIX):
        raise ConfigError(
            f"_target_ {target!r} is outside the minispeech package; refusing to "
            "import it (pass trust_targets=True only for configs you wrote or trust)"
        )
    parts = target.split(".")
    for i in range(len(parts) - 1, 0, -1):  # the longest importable module prefix
        module_name = ".".join(parts[:i])
        try:
            obj = importlib.import_module(module_name)
            break
        except ModuleNotFoundError as error:
            if error.name is None or not (module_name + ".").startswith(
                error.name + "."
            ):
                raise ConfigError(
                    f"_target_ {target!r}: cannot import: {error}"
                ) from None
        except ImportError as error:
            raise ConfigError(f"_target_ {target!r}: cannot import: {error}") from None
    else:
        raise ConfigError(f"_target_ {target!r}: cannot import {parts[0]!r}")
    for attr in parts[i:]:  # then attributes: module.Class(.inner)
        if not hasattr(obj, attr):
            raise ConfigError(f"_target_ {target!r}: {obj.__name__} has no {attr!r}")
        obj = getattr(obj, attr)
    return obj


def instantiate(cfg: dict, *, trust_targets: bool = False, **extra: Any) -> Any:
    """Build `cfg["_target_"]` with the other keys (and `extra`) as keyword arguments.

    Not recursive: nested sections stay dicts, so a module that needs a sub-module
    builds it explicitly with another `instantiate` call.
    """
    if not isinstance(cfg, dict) or "_target_" not in cfg:
        raise ConfigError(
            f"instantiate needs a mapping with a _target_ key, got {cfg!r}"
        )
    target = locate(cfg["_target_"], trust_targets=trust_targets)
    kwargs = {key: value for key, value in cfg.items() if key != "_target_"}
    kwargs.update(extra)
    check_arguments(target, kwargs, name=cfg["_target_"])
    return target(**kwargs)


def check_arguments(target: Any, kwargs: dict, name: str) -> None:
    """Fail before the call on an unknown or a missing argument of `target`."""
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return  # some builtins have no signature; let the call itself complain
    kinds = {p.kind for p in params.values()}
    valid = [
        n for n, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    if inspect.Parameter.VAR_KEYWORD not in kinds:
        for key in kwargs:
            if key not in valid:
                near = difflib.get_close_matches(key, valid, n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                raise ConfigError(
                    f"{name}: unknown argument {key!r}{hint}; valid arguments: "
                    f"{', '.join(valid)}"
                )
    missing = [
        n
        for n, p in params.items()
        if p.default is p.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and n not in kwargs
    ]
    if missing:
        raise ConfigError(f"{name}: missing required arguments: {', '.join(missing)}")


def get_dotted(cfg: dict, dotted: str) -> Any:
    """`get_dotted(cfg, "tokenizer.dir")` is `cfg["tokenizer"]["dir"]` (or KeyError)."""
    node = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(dotted)
        node = node[part]
    return node


def set_dotted(cfg: dict, dotted: str, value: Any) -> None:
    """Set `cfg[a][b][c] = value` for `"a.b.c"`; the parent sections must exist."""
    *parents, last = dotted.split(".")
    node = cfg
    for part in parents:
        node = node[part]
    node[last] = value
