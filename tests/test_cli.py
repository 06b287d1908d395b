"""The `minispeech` command: verbs, --help everywhere, clear errors, lazy imports."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import yaml
from tiny_model import TinyModel, tiny_config

from minispeech.cli import VERBS, main
from minispeech.core.checkpoint import read_checkpoint

TESTS = Path(__file__).resolve().parent


def test_help_lists_every_verb(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(verb in out for verb in VERBS)
    assert main([]) == 2


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--help"],
        ["inspect", "--help"],
        ["manifest", "--help"],
        ["manifest", "check", "--help"],
        ["corpus", "--help"],
        ["corpus", "build", "--help"],
        ["corpus", "noisy", "--help"],
        ["evaluate", "--help"],
        ["transcribe", "--help"],
        ["lm", "--help"],
    ],
)
def test_every_verb_has_help(argv, capsys):
    assert main(argv) == 0
    assert "usage:" in capsys.readouterr().out


def test_unknown_verb_suggests_the_nearest(capsys):
    assert main(["trian"]) == 2
    assert "did you mean 'train'" in capsys.readouterr().err


def test_help_is_instant_and_imports_no_torch():
    code = (
        "import sys; from minispeech.cli import main; assert main(['--help']) == 0; "
        "print('TORCH' if 'torch' in sys.modules else 'NO TORCH')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip().endswith("NO TORCH"), out.stderr
    module = subprocess.run(
        [sys.executable, "-m", "minispeech", "--help"], capture_output=True, text=True
    )
    assert module.returncode == 0 and "train" in module.stdout


def write_yaml(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_train_runs_a_config_with_overrides(tmp_path, capsys):
    config = write_yaml(tmp_path / "tiny.yaml", tiny_config(tmp_path / "exp"))
    argv = [
        "train",
        str(config),
        "trainer.max_steps=3",
        "--trust-targets",
        "exp_manager.name=cli",
    ]
    assert main(argv) == 0
    model_file = tmp_path / "exp" / "cli" / "cli.nemo"
    assert f"model file: {model_file}" in capsys.readouterr().out
    steps = (tmp_path / "exp" / "cli" / "metrics.jsonl").read_text().count('"loss"')
    assert steps == 3


def test_train_errors_are_one_clear_line(tmp_path, capsys):
    config = write_yaml(tmp_path / "tiny.yaml", tiny_config(tmp_path / "exp"))
    assert main(["train", str(config), "trainer.max_stesp=3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("minispeech train: ") and err.count("\n") == 1
    assert "trainer.max_stesp" in err and "trainer.max_steps" in err
    assert main(["train", str(config)]) == 2
    assert "outside the minispeech package" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [1,\n")
    assert main(["train", str(bad)]) == 2
    assert f"{bad}:" in capsys.readouterr().err


def test_a_bug_keeps_its_traceback(monkeypatch):
    """Only minispeech's own errors become one line; anything else propagates."""
    import minispeech.core.checkpoint as checkpoint

    def broken(*args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(checkpoint, "read_checkpoint", broken)
    with pytest.raises(KeyError, match="a bug"):
        main(["inspect", "whatever.nemo"])


def test_inspect_a_model_file(tmp_path, capsys):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("a b\n")
    model = TinyModel(
        {
            "_target_": "tiny_model.TinyModel",
            "n_samples": 6,
            "hidden": 4,
            "vocab": str(vocab),
            "optim": {"name": "adamw", "lr": 0.1},
        }
    )
    path = model.save_to(tmp_path / "m.nemo")
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "class:      tiny_model.TinyModel" in out
    assert f"parameters: {model.num_parameters():,} in 4 tensors" in out
    assert "artifacts:  vocab.txt" in out and "optim: {name, lr}" in out


def test_inspect_a_nemo_file(nemo_ref, capsys):
    path = nemo_ref / "conformer_ctc_tiny.nemo"
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    params = sum(
        t.numel()
        for t in read_checkpoint(path).state_dict.values()
        if t.is_floating_point()
    )
    assert "EncDecCTCModel" in out and f"parameters: {params:,}" in out
    assert "encoder: nemo.collections.asr.modules.ConformerEncoder (" in out


def test_inspect_refuses_an_unsafe_file(tmp_path, capsys):
    path = tmp_path / "bad.nemo"
    path.write_bytes(b"not a tar" * 100)
    assert main(["inspect", str(path)]) == 2
    assert capsys.readouterr().err.startswith(f"minispeech inspect: {path}")


def test_manifest_check(tmp_path, capsys):
    soundfile.write(tmp_path / "a.wav", np.zeros(16000, dtype=np.float32), 16000)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"audio_filepath": "a.wav", "duration": 1.0, "text": "x"}\n')
    assert main(["manifest", "check", str(manifest)]) == 0
    assert "utterances: 1" in capsys.readouterr().out
    manifest.write_text('{"audio_filepath": "a.wav", "duration": 2.0, "text": "x"}\n')
    assert main(["manifest", "check", str(manifest)]) == 1
    assert f"{manifest}:1: duration" in capsys.readouterr().out


def test_corpus_build_forwards_to_the_corpus_builder(monkeypatch):
    import minispeech.data.corpus as corpus

    calls = []
    monkeypatch.setattr(corpus, "main", lambda argv: calls.append(argv) or 0)
    assert main(["corpus", "build", "--seed", "3"]) == 0
    assert main(["corpus", "build", "--out", "/tmp/x"]) == 0
    assert calls == [
        ["build", "--seed", "3", "--out", "data/tinyspeech"],
        ["build", "--out", "/tmp/x"],
    ]
