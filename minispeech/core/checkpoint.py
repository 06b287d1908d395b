"""Model files in NeMo's `.nemo` layout: written atomically, read without trust.

A model file is an uncompressed tar holding
  model_config.yaml   the model's config section, `_target_` (the model class) included
  model_weights.ckpt  a plain state dict (`torch.save`), read with `weights_only=True`
  artifacts           files (or flat folders of files) such as
  `tokenizer.model`/`vocab.txt`
Artifacts are referenced from the config by member name with NeMo's `nemo:` prefix, e.g.
`tokenizer: {dir: "nemo:tokenizer"}`; reading rewrites each reference to the path where
the member was extracted, so the model is rebuilt from a config that points at real
files.

Reading trusts nothing in the archive (the tarfile docs warn that `extractall` on
untrusted input can write outside the target folder): absolute paths, `..`, links,
devices and members that the config does not reference are refused with an error, never
skipped; the weights are unpickled with `torch.load(weights_only=True)`, which refuses
every global outside a small allow-list, so a pickle payload never runs. Every error is
one line that starts with the file's path. Writing goes to a temporary file in the same
folder that is `os.replace`d over the final name (with the umask's mode, like any new
file), so a crash leaves either the old file or the new one, never half a file.

Differs from NeMo: NeMo's config names the class as `target:` and prefixes artifact
names with a uuid, and older NeMo gzipped the tar; all are read here, but minispeech
writes `_target_`, plain member names and an uncompressed tar.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import re
import shutil
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from minispeech.core.config import ConfigError, load_yaml
from minispeech.errors import MinispeechError

CONFIG_NAME = "model_config.yaml"
WEIGHTS_NAME = "model_weights.ckpt"
ARTIFACT_PREFIX = "nemo:"


class CheckpointError(MinispeechError, RuntimeError):
    """A model or training-state file that cannot be read or does not fit."""


@dataclass(frozen=True)
class Checkpoint:
    """What a model file holds; `config`'s `nemo:` references are extracted paths."""

    config: dict  # the model config
    state_dict: dict  # parameter/buffer name -> tensor
    artifacts: dict  # member name -> Path of the extracted file or folder
    workdir: Path | None  # folder of the extracted artifacts (None if none)


# ---------------------------------------------------------------- writing


def atomic_write(path: str | Path, write) -> Path:
    """`write(file)` into a temporary file beside `path`, fsync, rename over `path`.
    The file gets the mode of any new file (0o666 minus the umask), not mkstemp's 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)  # atomic on POSIX and Windows
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_checkpoint(
    path: str | Path, config: dict, state_dict: dict, artifacts: dict
) -> Path:
    """Write a `.nemo`-style tar. `artifacts` maps member name -> source file or folder;
    every `nemo:<member>` reference in `config` must have an entry and vice versa."""
    refs = set(_artifact_refs(config).values())
    if refs != set(artifacts):
        raise CheckpointError(
            f"{path}: config references artifacts {sorted(refs)} "
            f"but {sorted(artifacts)} were given"
        )
    weights = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, weights)
    config_bytes = yaml.safe_dump(config, sort_keys=False).encode("utf-8")

    def write(file):
        with tarfile.open(fileobj=file, mode="w", format=tarfile.PAX_FORMAT) as tar:
            _add_bytes(tar, CONFIG_NAME, config_bytes)
            _add_bytes(tar, WEIGHTS_NAME, weights.getvalue())
            for member, source in sorted(artifacts.items()):
                _add_artifact(tar, path, member, Path(source))

    return atomic_write(path, write)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0  # reproducible bytes
    tar.addfile(info, io.BytesIO(data))


def _add_artifact(tar: tarfile.TarFile, path: Path, member: str, source: Path) -> None:
    if "/" in member or member in ("", ".", "..") or not _is_regular_or_dir(source):
        raise CheckpointError(
            f"{path}: artifact {member!r} from {source} is not usable"
        )
    if source.is_file():
        _add_bytes(tar, member, source.read_bytes())
        return
    for child in sorted(source.iterdir()):  # a flat folder, e.g. a tokenizer directory
        if not child.is_file() or child.is_symlink():
            raise CheckpointError(
                f"{path}: artifact folder {source} may hold only files: {child}"
            )
        _add_bytes(tar, f"{member}/{child.name}", child.read_bytes())


def _is_regular_or_dir(source: Path) -> bool:
    return not source.is_symlink() and (source.is_file() or source.is_dir())


def _artifact_refs(config: Any, prefix: str = "") -> dict:
    """Dotted config key -> member name, for every string value `nemo:<member>`."""
    refs = {}
    if isinstance(config, dict):
        for key, value in config.items():
            refs.update(_artifact_refs(value, f"{prefix}{key}."))
    elif isinstance(config, list):
        for i, value in enumerate(config):
            refs.update(_artifact_refs(value, f"{prefix}{i}."))
    elif isinstance(config, str) and config.startswith(ARTIFACT_PREFIX):
        refs[prefix[:-1]] = config[len(ARTIFACT_PREFIX) :]
    return refs


# ---------------------------------------------------------------- reading


def read_checkpoint(path: str | Path, map_location: Any = "cpu") -> Checkpoint:
    """Read a model file safely (see the module docstring); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such model file")
    try:
        with tarfile.open(path, mode=_tar_mode(path)) as tar:
            members = _safe_members(path, tar)
            config = _read_config(path, tar, members)
            refs = _artifact_refs(config)
            files = _check_members(path, members, set(refs.values()))
            state_dict = _read_weights(path, tar, members, map_location)
            workdir = _extract_artifacts(path, tar, files) if refs else None
    except PermissionError as error:
        raise CheckpointError(f"{path}: cannot read: {error.strerror}") from None
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise CheckpointError(
            f"{path}: truncated or corrupt archive: {reason}"
        ) from None
    artifacts = {name: workdir / name for name in sorted(set(refs.values()))}
    for dotted, name in refs.items():
        _set_ref(config, dotted, str(artifacts[name]))
    return Checkpoint(config, state_dict, artifacts, workdir)


def _tar_mode(path: Path) -> str:
    """The tarfile mode: "r:gz" for gzip bytes (older NeMo wrote .tar.gz), else "r:".
    Not "r:*": its error for a bad file lists every compression tried, one a line."""
    with open(path, "rb") as file:
        return "r:gz" if file.read(2) == b"\x1f\x8b" else "r:"


def _member_name(path: Path, member: tarfile.TarInfo) -> str:
    """The member's name without NeMo's leading `./`, after the safety checks."""
    name = member.name
    while name.startswith("./"):
        name = name[2:]
    parts = name.split("/")
    if name.startswith("/") or "\\" in name or ".." in parts or ":" in parts[0]:
        raise CheckpointError(
            f"{path}: unsafe member name {member.name!r} (absolute or '..')"
        )
    if member.issym() or member.islnk():
        raise CheckpointError(f"{path}: member {member.name!r} is a link; refusing it")
    if not (member.isfile() or member.isdir()):
        raise CheckpointError(
            f"{path}: member {member.name!r} is a device or special file"
        )
    return name.rstrip("/") or "."


def _safe_members(path: Path, tar: tarfile.TarFile) -> dict:
    members = {}
    for member in tar.getmembers():
        name = _member_name(path, member)
        if name in members and name != ".":
            raise CheckpointError(f"{path}: member {name!r} appears twice")
        members[name] = member
    return members


def _check_members(path: Path, members: dict, artifact_names: set) -> dict:
    """Every member must be expected; returns the artifact files (name -> TarInfo)."""
    for required in (CONFIG_NAME, WEIGHTS_NAME, *sorted(artifact_names)):
        if required not in members and not any(
            m.startswith(required + "/") for m in members
        ):
            raise CheckpointError(f"{path}: missing member {required!r}")
    files, unexpected = {}, []
    for name, member in members.items():
        top = name.split("/")[0]
        if name in (".", CONFIG_NAME, WEIGHTS_NAME):
            continue
        if top in artifact_names and (name == top or "/" not in name[len(top) + 1 :]):
            if member.isfile():
                files[name] = member
            continue
        unexpected.append(name)
    if unexpected:
        raise CheckpointError(f"{path}: unexpected members {sorted(unexpected)}")
    return files


def _read_member(path: Path, tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    file = tar.extractfile(member)
    data = file.read() if file is not None else b""
    if len(data) != member.size:
        raise CheckpointError(
            f"{path}: truncated archive: member {member.name!r} is short"
        )
    return data


def _read_config(path: Path, tar: tarfile.TarFile, members: dict) -> dict:
    if CONFIG_NAME not in members:
        raise CheckpointError(f"{path}: missing member {CONFIG_NAME!r}")
    data = _read_member(path, tar, members[CONFIG_NAME])
    try:
        config = load_yaml(data.decode("utf-8"), source=CONFIG_NAME)
    except UnicodeDecodeError as error:
        raise CheckpointError(
            f"{path}: {CONFIG_NAME} is not UTF-8 text (byte {error.start})"
        ) from None
    except ConfigError as error:  # malformed, a python tag, or a duplicate key
        raise CheckpointError(f"{path}: {error}") from None
    if not isinstance(config, dict):
        raise CheckpointError(
            f"{path}: {CONFIG_NAME} must hold a mapping, got {type(config).__name__}"
        )
    target = config.get("_target_", "")
    if not isinstance(target, str):
        raise CheckpointError(
            f"{path}: {CONFIG_NAME}: _target_ must be a dotted class name, "
            f"got {target!r}"
        )
    return config


def _read_weights(path: Path, tar, members: dict, map_location: Any) -> dict:
    data = _read_member(path, tar, members[WEIGHTS_NAME])
    state_dict = load_torch_file(
        io.BytesIO(data), map_location, f"{path}: {WEIGHTS_NAME}"
    )
    if not isinstance(state_dict, dict) or not all(
        isinstance(v, torch.Tensor) for v in state_dict.values()
    ):
        raise CheckpointError(
            f"{path}: {WEIGHTS_NAME} is not a plain state dict of tensors"
        )
    return state_dict


def load_torch_file(file: Any, map_location: Any, name: str) -> Any:
    """`torch.load(weights_only=True)`; every failure becomes a one-line
    CheckpointError that names `name` and says what was found."""
    try:
        return torch.load(file, map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises many types for bad bytes
        raise CheckpointError(f"{name}: {_torch_load_problem(error)}") from None


def _torch_load_problem(error: Exception) -> str:
    """torch's error in one line, without its advice to load with weights_only=False
    (that would run whatever code the pickle holds)."""
    text = str(error)
    if "Weights only load failed" not in text:  # not a pickle refusal: bad bytes
        first = " ".join(text.split(". ")[0].split()) or "the data ends early"
        return f"corrupt torch file ({type(error).__name__}: {first})"
    found = re.search(r"GLOBAL ([\w.]+)", text)
    opcode = re.search(r"Unsupported operand (\d+)", text)
    if found:
        what = f"it refers to {found.group(1)}, which is not a tensor or plain data"
    elif opcode:
        what = f"unsupported pickle opcode {opcode.group(1)} (not a torch file?)"
    else:
        what = "it holds objects other than tensors and plain containers"
    return f"refused to unpickle: {what}; minispeech will not load it"


def _extract_artifacts(path: Path, tar: tarfile.TarFile, files: dict) -> Path:
    """Write the artifact members under a fresh folder (removed when Python exits)."""
    workdir = Path(tempfile.mkdtemp(prefix="minispeech_artifacts_"))
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    for name, member in files.items():
        target = workdir / name  # names were checked: no '..', no absolute paths
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(_read_member(path, tar, member))
    return workdir


def _set_ref(config: Any, dotted: str, value: str) -> None:
    *parents, last = dotted.split(".")
    node = config
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


# ---------------------------------------------------------------- restoring


@contextlib.contextmanager
def building_from(path: str | Path):
    """Name the model file when its config does not build the model:
    `with building_from(path): model = cls(checkpoint.config)` turns the TypeError
    of `hidden: "abc"` into `m.nemo: model_config.yaml does not build the model:
    TypeError: ...` (one line)."""
    try:
        yield
    except (ConfigError, TypeError, ValueError, KeyError, AttributeError) as error:
        text = f"missing key {error}" if isinstance(error, KeyError) else str(error)
        reason = f"{type(error).__name__}: {' '.join(text.split())}"
        raise CheckpointError(
            f"{path}: {CONFIG_NAME} does not build the model: {reason}"
        ) from None


def load_state_dict_checked(
    module: torch.nn.Module, state_dict: dict, strict: bool = True, source: str = ""
) -> dict:
    """Load weights, first listing missing, unexpected and mis-shaped keys in groups.

    strict=True raises CheckpointError on any mismatch; strict=False loads the keys that
    fit and returns the groups so the caller can report them.
    """
    own = module.state_dict()
    groups = {
        "missing": sorted(set(own) - set(state_dict)),
        "unexpected": sorted(set(state_dict) - set(own)),
        "mis-shaped": [
            f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
            for k in sorted(set(own) & set(state_dict))
            if state_dict[k].shape != own[k].shape
        ],
    }
    if strict and any(groups.values()):
        parts = []
        for group, keys in groups.items():
            if keys:
                more = " ..." if len(keys) > 20 else ""
                parts.append(
                    f"{group} keys ({len(keys)}): {', '.join(keys[:20])}{more}"
                )
        raise CheckpointError(
            f"{source}: state dict does not match {type(module).__name__}: "
            + "; ".join(parts)
        )
    bad = set(groups["unexpected"]) | {s.split(":")[0] for s in groups["mis-shaped"]}
    module.load_state_dict(
        {k: v for k, v in state_dict.items() if k not in bad}, strict=False
    )
    return groups
