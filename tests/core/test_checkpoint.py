"""Model files: `.nemo` layout, artifacts, NeMo's own files, and untrusted archives.

Every bad archive below must fail with a CheckpointError naming the file, before
anything is written outside a fresh temporary folder and before any pickle payload can
run.
"""

import io
import tarfile
from pathlib import Path

import pytest
import torch
import yaml
from tiny_model import TinyModel

from minispeech.core.checkpoint import (
    CheckpointError,
    atomic_write,
    load_state_dict_checked,
    read_checkpoint,
    save_checkpoint,
)
from minispeech.core.model import restore_from

CFG = {"_target_": "tiny_model.TinyModel", "n_samples": 6, "hidden": 4}


def tiny(**extra) -> TinyModel:
    return TinyModel({**CFG, **extra})


def weights_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def write_tar(path: Path, members: list) -> Path:
    """members: (TarInfo, bytes or None)."""
    with tarfile.open(path, "w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def file_member(name: str, data: bytes):
    return tarfile.TarInfo(name), data


def valid_members(config=None, state_dict=None) -> list:
    config = config or CFG
    state_dict = state_dict if state_dict is not None else tiny().state_dict()
    return [
        file_member("./model_config.yaml", yaml.safe_dump(config).encode()),
        file_member("./model_weights.ckpt", weights_bytes(state_dict)),
    ]


def test_save_and_restore_round_trip_with_artifacts(tmp_path):
    vocab_file = tmp_path / "labels.txt"
    vocab_file.write_text("a b c\n")
    model = tiny(vocab=str(vocab_file))
    path = model.save_to(tmp_path / "model.nemo")

    with tarfile.open(path) as tar:
        names = sorted(tar.getnames())
        saved_cfg = yaml.safe_load(tar.extractfile("model_config.yaml"))
    assert names == ["labels.txt", "model_config.yaml", "model_weights.ckpt"]
    assert saved_cfg["vocab"] == "nemo:labels.txt"
    assert saved_cfg["_target_"] == "tiny_model.TinyModel"

    vocab_file.unlink()  # the model file alone must be enough
    restored = TinyModel.restore_from(path, trust_targets=True)
    assert restored.labels == ["a", "b", "c"]
    for key, value in model.state_dict().items():
        assert torch.equal(value, restored.state_dict()[key])
    # saving a restored model stores the extracted artifact again
    again = read_checkpoint(restored.save_to(tmp_path / "again.nemo"))
    assert again.artifacts["labels.txt"].read_text() == "a b c\n"
    assert again.config["vocab"] == str(again.artifacts["labels.txt"])


def test_artifact_folder_round_trip(tmp_path):
    folder = tmp_path / "tokenizer"
    folder.mkdir()
    (folder / "vocab.txt").write_text("x y\n")
    (folder / "notes.md").write_text("made for a test\n")
    path = tiny(vocab=str(folder)).save_to(tmp_path / "model.nemo")
    checkpoint = read_checkpoint(path)
    assert (
        checkpoint.artifacts["tokenizer"] / "notes.md"
    ).read_text() == "made for a test\n"
    assert TinyModel.restore_from(path, trust_targets=True).labels == ["x", "y"]


def test_restore_refuses_targets_outside_the_package(tmp_path):
    path = tiny().save_to(tmp_path / "model.nemo")
    with pytest.raises(
        CheckpointError, match=f"{path}: .*tiny_model.TinyModel.*outside"
    ):
        restore_from(path)
    evil = write_tar(tmp_path / "evil.nemo", valid_members({"_target_": "os.system"}))
    with pytest.raises(CheckpointError, match=f"{evil}: .*'os.system'.*outside"):
        restore_from(evil)
    with pytest.raises(CheckpointError, match="not a SpeechModel subclass"):
        restore_from(evil, trust_targets=True)


@pytest.mark.parametrize(
    "name", ["conformer_ctc_tiny", "fastconformer_ctc_tiny", "fastconformer_rnnt_tiny"]
)
def test_reads_nemo_reference_files(nemo_ref, name):
    checkpoint = read_checkpoint(nemo_ref / f"{name}.nemo")
    assert checkpoint.config["target"].startswith("nemo.collections.asr.models.")
    # every key and shape NeMo listed when it saved the model
    expected = {}
    for line in (nemo_ref / f"{name}_state_dict.txt").read_text().splitlines():
        key, shape = _parse_state_line(line)
        if key:
            expected[key] = shape
    got = {k: tuple(v.shape) for k, v in checkpoint.state_dict.items()}
    assert got == expected
    with pytest.raises(CheckpointError, match="no _target_ .*import_nemo"):
        restore_from(nemo_ref / f"{name}.nemo")


def _parse_state_line(line: str):
    """Lines of NAME_state_dict.txt: `key<TAB>(d0, d1, ...)<TAB>dtype`."""
    if not line.strip():
        return None, None
    key, shape, _ = line.split("\t")
    return key, tuple(int(d) for d in shape.strip("()").split(",") if d.strip())


def test_state_dict_mismatch_lists_groups(tmp_path):
    model = tiny()
    state = model.state_dict()
    state["net.0.weight"] = torch.zeros(3, 3)
    state["extra.bias"] = torch.zeros(2)
    del state["net.3.bias"]
    path = write_tar(tmp_path / "mismatch.nemo", valid_members(state_dict=state))
    with pytest.raises(CheckpointError) as error:
        restore_from(path, trust_targets=True)
    message = str(error.value)
    assert str(path) in message
    assert "missing keys (1): net.3.bias" in message
    assert "unexpected keys (1): extra.bias" in message
    assert "mis-shaped keys (1): net.0.weight: file (3, 3) vs model (4, 6)" in message
    groups = load_state_dict_checked(tiny(), state, strict=False)
    assert groups["missing"] == ["net.3.bias"]


def test_pickle_payload_in_the_weights_never_runs(tmp_path):
    class Payload:
        def __init__(self, marker):
            self.marker = marker

        def __reduce__(self):  # unpickling would call open(marker, "w"): creates a file
            return (open, (str(self.marker), "w"))

    live = weights_bytes({"w": Payload(tmp_path / "control")})
    torch.load(io.BytesIO(live), weights_only=False)  # proves the payload is real ...
    assert (tmp_path / "control").exists()

    marker = tmp_path / "pwned"
    members = valid_members()
    members[1] = file_member(
        "./model_weights.ckpt", weights_bytes({"w": Payload(marker)})
    )
    path = write_tar(tmp_path / "payload.nemo", members)
    with pytest.raises(
        CheckpointError, match=f"{path}: model_weights.ckpt: refused to unpickle"
    ):
        read_checkpoint(path)
    assert not marker.exists()  # ... and that weights_only=True never ran it


def _link(name, target, kind):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def _special(name, kind):
    info = tarfile.TarInfo(name)
    info.type = kind
    return info, None


@pytest.mark.parametrize(
    "member, problem",
    [
        (file_member("../escape.txt", b"x"), "unsafe member name '../escape.txt'"),
        (file_member("./a/../../escape.txt", b"x"), "unsafe member name"),
        (file_member("/etc/evil", b"x"), "unsafe member name '/etc/evil'"),
        (_link("./link", "/etc/passwd", tarfile.SYMTYPE), "'./link' is a link"),
        (_link("./hard", "model_config.yaml", tarfile.LNKTYPE), "'./hard' is a link"),
        (_special("./dev", tarfile.CHRTYPE), "'./dev' is a device or special file"),
        (_special("./fifo", tarfile.FIFOTYPE), "'./fifo' is a device or special file"),
        (file_member("./extra.py", b"print(1)"), r"unexpected members \['extra.py'\]"),
        (
            file_member("model_config.yaml", b"a: 1"),
            "'model_config.yaml' appears twice",
        ),
    ],
)
def test_untrusted_archives_are_refused(tmp_path, member, problem):
    path = write_tar(tmp_path / "bad.nemo", valid_members() + [member])
    with pytest.raises(CheckpointError, match=f"{path}: .*{problem}"):
        read_checkpoint(path)
    assert not (tmp_path.parent / "escape.txt").exists()


def test_missing_member_is_named(tmp_path):
    path = write_tar(tmp_path / "noweights.nemo", valid_members()[:1])
    with pytest.raises(
        CheckpointError, match=f"{path}: missing member 'model_weights.ckpt'"
    ):
        read_checkpoint(path)
    config = dict(CFG, vocab="nemo:vocab.txt")
    path = write_tar(tmp_path / "noartifact.nemo", valid_members(config))
    with pytest.raises(CheckpointError, match=f"{path}: missing member 'vocab.txt'"):
        read_checkpoint(path)


def test_truncated_and_corrupt_archives_are_named(tmp_path):
    path = tiny().save_to(tmp_path / "good.nemo")
    good = path.read_bytes()
    with tarfile.open(path) as tar:  # the data ends here; zero padding follows
        end = max(m.offset_data + m.size for m in tar.getmembers())
    for cut in (100, 700, end // 2, end - 10):
        path = tmp_path / f"cut{cut}.nemo"
        path.write_bytes(good[:cut])
        with pytest.raises(
            CheckpointError, match=f"{path}: (truncated|corrupt|missing)"
        ):
            read_checkpoint(path)
    garbage = tmp_path / "garbage.nemo"
    garbage.write_bytes(b"\x00\x01 not a tar at all" * 50)
    with pytest.raises(CheckpointError, match=f"{garbage}: "):
        read_checkpoint(garbage)
    with pytest.raises(CheckpointError, match="no such model file"):
        read_checkpoint(tmp_path / "absent.nemo")


def test_python_tag_in_model_config_is_refused(tmp_path):
    members = valid_members()
    members[0] = file_member(
        "model_config.yaml", b"x: !!python/object/apply:os.getcwd []\n"
    )
    path = write_tar(tmp_path / "tag.nemo", members)
    with pytest.raises(
        CheckpointError, match=f"{path}: model_config.yaml:1: malformed YAML"
    ):
        read_checkpoint(path)


def test_weights_that_are_not_a_state_dict(tmp_path):
    members = valid_members()
    members[1] = file_member("model_weights.ckpt", weights_bytes([1, 2, 3]))
    path = write_tar(tmp_path / "list.nemo", members)
    with pytest.raises(CheckpointError, match="not a plain state dict"):
        read_checkpoint(path)


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tiny().save_to(tmp_path / "model.nemo")
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed mid-save")

    monkeypatch.setattr(tarfile.TarFile, "addfile", crash)
    with pytest.raises(KeyboardInterrupt):
        tiny(hidden=5).save_to(path)
    assert path.read_bytes() == before  # the old file is untouched ...
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "model.nemo"
    ]  # ... no leftovers
    with pytest.raises(ZeroDivisionError):
        atomic_write(tmp_path / "x.bin", lambda f: (f.write(b"half"), 1 / 0))
    assert not (tmp_path / "x.bin").exists()


def test_save_checkpoint_checks_artifact_references(tmp_path):
    with pytest.raises(CheckpointError, match=r"references artifacts \['vocab.txt'\]"):
        save_checkpoint(tmp_path / "m.nemo", {"v": "nemo:vocab.txt"}, {}, {})
