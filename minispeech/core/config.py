"""Configs: plain YAML, the recipe loader and a safe `_target_` builder.

A config is a nested dict read with `yaml.safe_load` (no tags, no interpolation, no
environment variables; a key repeated in one mapping is an error, not "last wins"), and
every error names the file: `conf.yaml:4: ...`, or `config_errors(path)` around later
checks. Dotted command-line overrides (`model.optim.lr=0.001`) are in overrides.py.
`instantiate({"_target_": "minispeech.x.Class", ...})` imports the
class and calls it with the other keys; `_target_`s outside `minispeech.` are refused
unless the caller trusts the config, because a config read from a downloaded checkpoint
must not be able to import and run arbitrary code.

Differs from Hydra/OmegaConf: no `${...}` interpolation, no recursive instantiation (a
model builds its own sub-modules from its section, so every constructor call is visible
in code).
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import inspect
from pathlib import Path
from typing import Any, Iterable

import yaml

from minispeech.core.overrides import apply_overrides
from minispeech.errors import ConfigError

ALLOWED_PREFIX = "minispeech."


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> dict:
    """Read a YAML config (safe loader only) and apply dotted `key=value` overrides."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text (byte {error.start})") from None
    cfg = load_yaml(text, source=str(path))
    if cfg is None:
        cfg = {}
    if not isinstance(cfg, dict):
        raise ConfigError(
            f"{path}: the top level must be a mapping, got {type(cfg).__name__}"
        )
    return apply_overrides(cfg, overrides, source=str(path))


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key repeated in one mapping (PyYAML would keep
    the last value silently: `max_steps: 2` then `max_steps: 3` gives 3)."""

    def construct_mapping(self, node, deep=False):
        first_line = {}  # key -> the line it first appeared on
        for key_node, _ in node.value if isinstance(node, yaml.MappingNode) else ():
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *base` may override keys on purpose
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float)):
                continue  # unhashable keys get SafeLoader's own error below
            if key in first_line:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first on line {first_line[key]})",
                    key_node.start_mark,
                )
            first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str, source: str) -> Any:
    """`yaml.safe_load(text)`, but a duplicate key is an error too; every error is a
    one-line ConfigError `source:line: problem` (source: the file, for the message)."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = " ".join(p for p in (error.context, error.problem) if p)
        kind = "" if "duplicate key" in problem else "malformed YAML: "
        raise ConfigError(f"{where}: {kind}{problem}") from None
    except yaml.YAMLError as error:
        message = " ".join(str(error).split())
        raise ConfigError(f"{source}: malformed YAML: {message}") from None


@contextlib.contextmanager
def config_errors(source: str | Path):
    """Name the config file in every ConfigError raised inside the block.

    `load_config` names the file itself; checks that run later on the returned dict
    (trainer options, `instantiate`, `check_keys`) do not know it. Wrap them:
    `with config_errors(path): train(cfg)` turns `trainer.max_steps: must be >= 1`
    into `conf.yaml: trainer.max_steps: must be >= 1`. Nothing is stored in the
    config, so a saved config never carries the path.
    """
    try:
        yield
    except ConfigError as error:
        message = str(error)
        if message.startswith(f"{source}:"):
            raise
        raise ConfigError(f"{source}: {message}") from None


# config keys that name data files; load_recipe anchors relative ones at a root folder
DATA_PATH_KEYS = (
    "manifest_filepath",
    "train_manifest",
    "transcripts_manifest",
    "exclude_manifests",
)


def load_recipe(
    path: str | Path, root: str | Path, exp_dir: str | Path, **trainer: Any
) -> dict:
    """A shipped recipe set up for a short run from anywhere (tutorials, tests).

    Relative data paths (`manifest_filepath`, `train_manifest`) are made absolute
    against `root` (the repository), the experiment goes to a fresh `exp_dir`, the
    progress bar is off, and `trainer` keys (max_steps=40, ...) replace the recipe's.
    A relative `model.tokenizer.dir` (a tokenizer the recipe trains on first use)
    moves to `exp_dir/tokenizers/`, so a short run never writes into the working
    directory and always trains the tokenizer its recipe describes.
    """
    cfg = load_config(path)
    _anchor_data_paths(cfg, Path(root))
    tokenizer = cfg.get("model", {}).get("tokenizer")
    if isinstance(tokenizer, dict) and isinstance(tokenizer.get("dir"), str):
        tok_dir = tokenizer["dir"]
        if not (Path(tok_dir).is_absolute() or tok_dir.startswith("nemo:")):
            tokenizer["dir"] = str(Path(exp_dir) / "tokenizers" / Path(tok_dir).name)
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
            elif key in DATA_PATH_KEYS and isinstance(value, list):
                cfg[key] = [
                    str(v if Path(v).is_absolute() else root / v) for v in value
                ]
            else:
                _anchor_data_paths(value, root)
    elif isinstance(cfg, list):
        for item in cfg:
            _anchor_data_paths(item, root)


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


def check_keys(
    section_name: str,
    given: Iterable[str],
    valid: Iterable[str],
    where: str = "",
    *,
    required: Iterable[str] = (),
    noun: str = "key",
) -> None:
    """The one check of a config section's keys: an unknown key (with the nearest
    valid ones, difflib) or a missing required key is a one-line ConfigError
    `model.encoder (ConformerEncoder): unknown key 'n_layer' (did you mean
    'n_layers'?); valid keys: ...`. `where` says what the keys are for (a class);
    `valid` keeps its order in the message."""
    valid = [str(key) for key in valid]
    unknown = [key for key in given if key not in valid]
    missing = [key for key in required if key not in given]
    if not unknown and not missing:
        return
    problems = []
    if unknown:
        named = []
        for key in unknown:
            near = difflib.get_close_matches(str(key), valid, n=2, cutoff=0.6)
            hint = " or ".join(repr(n) for n in near)
            named.append(f"{key!r} (did you mean {hint}?)" if near else repr(key))
        plural = "s" if len(unknown) > 1 else ""
        problems.append(f"unknown {noun}{plural} {', '.join(named)}")
    if missing:
        problems.append(f"missing required {noun}s: {', '.join(missing)}")
    context = f" ({where})" if where else ""
    raise ConfigError(
        f"{section_name}{context}: {'; '.join(problems)}; "
        f"valid {noun}s: {', '.join(valid)}"
    )


def check_arguments(
    target: Any,
    kwargs: dict,
    name: str,
    fixed: Iterable[str] = (),
    noun: str = "argument",
) -> None:
    """Fail before the call on an unknown or a missing keyword argument of `target`
    (`check_keys`). `fixed`: arguments the calling code supplies itself, so a config
    may neither give nor miss them."""
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return  # some builtins have no signature; let the call itself complain
    fixed = set(fixed)
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    names = [n for n, p in params.items() if p.kind in keyword and n not in fixed]
    required = [n for n in names if params[n].default is inspect.Parameter.empty]
    takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
    given = [key for key in kwargs if not takes_any or key in names]
    check_keys(name, given, names, required=required, noun=noun)


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
