"""Bad model files: every one is refused with one CheckpointError line that starts
with the file's path and says what is wrong; nothing is written outside a fresh
temporary folder, no pickle payload runs, and a failed save leaves the previous file
(model or last.ckpt) as it was. Also: saved files get the umask's mode, not 0600.
"""

import gzip
import io
import os
import re
import tarfile

import pytest
import torch
import yaml
from tiny_model import TinyModel

from minispeech.core.checkpoint import (
    CheckpointError,
    atomic_write,
    building_from,
    read_checkpoint,
    save_checkpoint,
)
from minispeech.core.model import restore_from
from minispeech.errors import MinispeechError

CFG = {"_target_": "tiny_model.TinyModel", "n_samples": 6, "hidden": 4}


class Payload:
    """Unpickling it would create the file `marker` (as any code could run)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


class Custom:
    """A harmless class that is still not plain weights."""


def torch_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def weights(**changes) -> bytes:
    """TinyModel weights; a value of None deletes the key, a tensor replaces it."""
    state = TinyModel(CFG).state_dict()
    for key, value in changes.items():
        key = key.replace("__", ".")
        state.pop(key) if value is None else state.__setitem__(key, value)
    return torch_bytes(state)


def member(name, data=b"", kind=tarfile.REGTYPE, link=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info, data


def config(cfg=CFG) -> tuple:
    return member("model_config.yaml", yaml.safe_dump(cfg).encode())


def good_members() -> list:
    return [config(), member("model_weights.ckpt", weights())]


def write_tar(path, members, mode="w"):
    with tarfile.open(path, mode) as tar:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def plus(*extra) -> list:
    return good_members() + list(extra)


def replace(index, new) -> list:
    members = good_members()
    members[index] = new
    return members


# (tar members, function, regex after "path: "), id=the case
ARCHIVES = [
    pytest.param(
        replace(1, member("model_weights.ckpt", b"PAYLOAD")),
        read_checkpoint,
        "model_weights.ckpt: refused to unpickle: it refers to .*open, which is "
        "not a tensor or plain data; minispeech will not load it$",
        id="pickle-payload",
    ),
    pytest.param(
        replace(1, member("model_weights.ckpt", torch_bytes({"w": Custom()}))),
        read_checkpoint,
        "model_weights.ckpt: refused to unpickle: .*test_bad_model_files.Custom",
        id="pickled-class",
    ),
    pytest.param(
        replace(1, member("model_weights.ckpt", b"garbage" * 20)),
        read_checkpoint,
        "model_weights.ckpt: refused to unpickle: unsupported pickle opcode",
        id="weights-garbage",
    ),
    pytest.param(
        replace(1, member("model_weights.ckpt", weights()[:200])),
        read_checkpoint,
        "model_weights.ckpt: corrupt torch file",
        id="weights-truncated",
    ),
    pytest.param(
        replace(1, member("model_weights.ckpt", torch_bytes([1, 2]))),
        read_checkpoint,
        "model_weights.ckpt is not a plain state dict of tensors$",
        id="weights-not-a-dict",
    ),
    pytest.param(
        plus(member("/etc/evil", b"x")),
        read_checkpoint,
        "unsafe member name '/etc/evil'",
        id="absolute-path",
    ),
    pytest.param(
        plus(member("../escape.txt", b"x")),
        read_checkpoint,
        r"unsafe member name '../escape.txt' \(absolute or '..'\)$",
        id="dot-dot",
    ),
    pytest.param(
        plus(member("./link", kind=tarfile.SYMTYPE, link="/etc/passwd")),
        read_checkpoint,
        "member './link' is a link; refusing it$",
        id="symlink",
    ),
    pytest.param(
        plus(member("hard", kind=tarfile.LNKTYPE, link="model_config.yaml")),
        read_checkpoint,
        "member 'hard' is a link",
        id="hardlink",
    ),
    pytest.param(
        plus(member("dev", kind=tarfile.CHRTYPE)),
        read_checkpoint,
        "member 'dev' is a device or special file$",
        id="device",
    ),
    pytest.param(
        plus(member("extra.py", b"print(1)")),
        read_checkpoint,
        r"unexpected members \['extra.py'\]$",
        id="unexpected-member",
    ),
    pytest.param(
        plus(member("./model_config.yaml", b"a: 1")),
        read_checkpoint,
        "member 'model_config.yaml' appears twice$",
        id="member-twice",
    ),
    pytest.param(
        good_members()[:1],
        read_checkpoint,
        "missing member 'model_weights.ckpt'$",
        id="no-weights",
    ),
    pytest.param(
        good_members()[1:],
        read_checkpoint,
        "missing member 'model_config.yaml'$",
        id="no-config",
    ),
    pytest.param(
        replace(0, config({**CFG, "vocab": "nemo:vocab.txt"})),
        read_checkpoint,
        "missing member 'vocab.txt'$",
        id="no-artifact",
    ),
    pytest.param(
        replace(0, member("model_config.yaml", b"hidden: 4\nhidden: 8\n")),
        read_checkpoint,
        r"model_config.yaml:2: duplicate key 'hidden' \(first on line 1\)$",
        id="config-duplicate-key",
    ),
    pytest.param(
        replace(0, member("model_config.yaml", b"x: !!python/object/apply:os.getcwd")),
        read_checkpoint,
        "model_config.yaml:1: malformed YAML: could not determine a constructor",
        id="config-python-tag",
    ),
    pytest.param(
        replace(0, member("model_config.yaml", b"- a\n- b\n")),
        read_checkpoint,
        "model_config.yaml must hold a mapping, got list$",
        id="config-not-a-mapping",
    ),
    pytest.param(
        replace(0, member("model_config.yaml", b"_target_: x\nname: \xff\n")),
        read_checkpoint,
        r"model_config.yaml is not UTF-8 text \(byte 18\)$",
        id="config-not-utf8",
    ),
    pytest.param(
        replace(0, config({**CFG, "_target_": 5})),
        read_checkpoint,
        "model_config.yaml: _target_ must be a dotted class name, got 5$",
        id="target-not-a-string",
    ),
    pytest.param(
        replace(0, config({**CFG, "_target_": "os.system"})),
        restore_from,
        "_target_ 'os.system' is outside the minispeech package",
        id="target-outside-minispeech",
    ),
    pytest.param(
        replace(0, config({"target": "nemo.collections.asr.models.EncDecCTCModel"})),
        restore_from,
        "model_config.yaml has no _target_ .*use minispeech.import_nemo",
        id="nemo-file",
    ),
    pytest.param(
        replace(1, member("model_weights.ckpt", weights(net__0__weight=torch.ones(3)))),
        lambda path: restore_from(path, trust_targets=True),
        r"state dict does not match TinyModel: mis-shaped keys \(1\): "
        r"net.0.weight: file \(3,\) vs model \(4, 6\)$",
        id="wrong-shape",
    ),
    pytest.param(
        replace(1, member("model_weights.ckpt", weights(net__3__bias=None))),
        lambda path: restore_from(path, trust_targets=True),
        r"state dict does not match TinyModel: missing keys \(1\): net.3.bias$",
        id="missing-weight",
    ),
]  # fmt: skip


@pytest.mark.parametrize("members, read, expected", ARCHIVES)
def test_bad_model_file_is_one_line_naming_it(tmp_path, members, read, expected):
    marker = tmp_path / "pwned"
    members = [
        (info, torch_bytes({"w": Payload(marker)}) if data == b"PAYLOAD" else data)
        for info, data in members
    ]
    path = write_tar(tmp_path / "bad.nemo", members)
    before = sorted(tmp_path.parent.iterdir())
    with pytest.raises(CheckpointError) as error:
        read(path)
    message = str(error.value)
    assert "\n" not in message, message
    assert "weights_only" not in message  # never advise loading it unsafely
    assert re.match(f"{re.escape(str(path))}: {expected}", message), message
    assert isinstance(error.value, (MinispeechError, RuntimeError))
    assert sorted(tmp_path.iterdir()) == [path]  # no payload ran, nothing extracted
    assert sorted(tmp_path.parent.iterdir()) == before  # no '..' escape


def saved_model(tmp_path) -> tuple[bytes, int]:
    """A good model file's bytes, and where its data ends (zero padding follows)."""
    path = TinyModel(CFG).save_to(tmp_path / "good.nemo")
    with tarfile.open(path) as tar:
        end = max(m.offset_data + m.size for m in tar.getmembers())
    data = path.read_bytes()
    path.unlink()
    return data, end


def cut_at(fraction):
    return lambda data, end: data[: int(end * fraction)]


CUT = "(truncated or corrupt archive|missing member)"

# (turn a good file's bytes into a bad one, regex after "path: "), id=the case
DAMAGED = [
    pytest.param(cut_at(0.1), CUT, id="cut-10%"),
    pytest.param(cut_at(0.5), CUT, id="cut-50%"),
    pytest.param(cut_at(0.9), CUT, id="cut-90%"),
    pytest.param(lambda data, end: data[: end - 10], CUT, id="cut-end"),
    pytest.param(lambda data, end: b"", CUT, id="empty-file"),
    pytest.param(lambda data, end: b"\x00\x01 junk" * 99, CUT, id="junk"),
    pytest.param(lambda data, end: gzip.compress(data)[:300], CUT, id="cut-gz"),
    pytest.param(
        lambda data, end: gzip.compress(data)[:20] + b"x" * 500, CUT, id="bad-gz"
    ),
]


@pytest.mark.parametrize("damage, expected", DAMAGED)
def test_damaged_model_file_is_named(tmp_path, damage, expected):
    path = tmp_path / "bad.nemo"
    path.write_bytes(damage(*saved_model(tmp_path)))
    with pytest.raises(CheckpointError) as error:
        read_checkpoint(path)
    message = str(error.value)
    assert "\n" not in message, message
    assert re.match(f"{re.escape(str(path))}: {expected}", message), message


def test_missing_path_and_folder_are_named(tmp_path):
    with pytest.raises(CheckpointError, match=r"nope.nemo: no such model file$"):
        read_checkpoint(tmp_path / "nope.nemo")
    (tmp_path / "dir.nemo").mkdir()
    with pytest.raises(CheckpointError, match=r"dir.nemo: no such model file$"):
        read_checkpoint(tmp_path / "dir.nemo")


def test_gzipped_nemo_file_is_read(tmp_path):
    """Older NeMo versions wrote .nemo files as .tar.gz; NeMo reads both."""
    path = tmp_path / "old.nemo"
    path.write_bytes(gzip.compress(saved_model(tmp_path)[0]))
    restored = restore_from(path, trust_targets=True)
    assert isinstance(restored, TinyModel)


# ---------------------------------------------------------------- failed saves


def failing_save(kind):
    def save(path):
        if kind == "artifact-reference":
            save_checkpoint(path, {"v": "nemo:vocab.txt"}, {}, {})
        elif kind == "artifact-is-a-link":
            link = path.parent / "link.txt"
            link.symlink_to(path)
            save_checkpoint(path, {"v": "nemo:link.txt"}, {}, {"link.txt": link})
        elif kind == "killed-mid-write":
            atomic_write(path, lambda f: (f.write(b"half"), _raise(KeyboardInterrupt)))
        elif kind == "disk-error":
            atomic_write(
                path, lambda f: (f.write(b"half"), _raise(OSError(28, "full")))
            )

    return save


def _raise(error):
    raise error


@pytest.mark.parametrize(
    "kind",
    ["artifact-reference", "artifact-is-a-link", "killed-mid-write", "disk-error"],
)
@pytest.mark.parametrize("name", ["model.nemo", "last.ckpt"])
def test_failed_save_keeps_the_previous_file(tmp_path, kind, name):
    path = tmp_path / name
    path.write_bytes(b"the previous checkpoint")
    before = sorted(tmp_path.iterdir())
    with pytest.raises((CheckpointError, KeyboardInterrupt, OSError)):
        failing_save(kind)(path)
    assert path.read_bytes() == b"the previous checkpoint"
    leftovers = set(tmp_path.iterdir()) - set(before) - {tmp_path / "link.txt"}
    assert not leftovers  # no temporary file left behind


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_saved_files_get_the_umask_mode(tmp_path, umask):
    """Model files and last.ckpt are written like logs: 0o666 & ~umask, not 0600."""
    old = os.umask(umask)
    try:
        model = TinyModel(CFG).save_to(tmp_path / "model.nemo")
        last = atomic_write(tmp_path / "last.ckpt", lambda f: f.write(b"state"))
        log = tmp_path / "log.jsonl"
        log.write_text("{}\n")
    finally:
        os.umask(old)
    for path in (model, last, log):
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"hidden": "abc"}, "TypeError: empty"),
        ({"n_samples": None}, "TypeError: "),
        ({"dropout": 7.0}, "ValueError: dropout probability"),
    ],
)
def test_config_that_does_not_build_the_model_names_the_file(
    tmp_path, change, expected
):
    """What restore_from does with `building_from` around the model's constructor."""
    path = write_tar(tmp_path / "bad.nemo", replace(0, config({**CFG, **change})))
    checkpoint = read_checkpoint(path)
    with pytest.raises(CheckpointError) as error:
        with building_from(path):
            TinyModel(checkpoint.config)
    message = str(error.value)
    assert "\n" not in message, message
    prefix = f"{path}: model_config.yaml does not build the model: {expected}"
    assert message.startswith(prefix), message
