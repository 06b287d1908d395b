"""Bad command lines, for every verb of `minispeech`: each is refused with exit code 2
and ONE line on stderr, `minispeech <verb>: ...`, that names the file, line, field or
option at fault; no traceback; and nothing in the working folder is written, changed or
lost (no partial output, a pre-existing output or model file is left as it was).

The verbs run in-process (`minispeech.cli.main`) against tiny models saved once per
module: a CTC and a transducer model (1 conformer layer), and a non-ASR TinyModel.
"""

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import yaml
from tiny_model import TinyModel, tiny_config

from minispeech.asr import CTCModel, TransducerModel
from minispeech.cli import VERBS, main

SHOW = os.environ.get("SHOW_ERRORS")  # print each message (to read them all)
LABELS = [" "] + [chr(c) for c in range(ord("a"), ord("z") + 1)] + ["'"]
CTC = {
    "_target_": "minispeech.asr.CTCModel",
    "labels": LABELS,
    "preprocessor": {"features": 16, "dither": 0.0},
    "encoder": {
        "_target_": "minispeech.nn.ConformerEncoder",
        "feat_in": 16,
        "n_layers": 1,
        "d_model": 16,
        "n_heads": 2,
        "conv_kernel_size": 3,
        "subsampling_conv_channels": 8,
    },
    "optim": {"name": "adam", "lr": 1e-3},
}
RNNT = {
    **CTC,
    "_target_": "minispeech.asr.TransducerModel",
    "decoder": {"pred_hidden": 16},
    "joint": {"joint_hidden": 16},
}


def jsonl(path: Path, rows: list) -> Path:
    text = "".join(
        (row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows
    )
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """The working folder every case runs against (and must leave unchanged)."""
    root = tmp_path_factory.mktemp("world")
    CTCModel(CTC).save_to(root / "ctc.nemo")
    TransducerModel(RNNT).save_to(root / "rnnt.nemo")
    TinyModel(tiny_config(root)["model"]).save_to(root / "tiny.nemo")
    (root / "corrupt.nemo").write_bytes(b"not a tar archive " * 64)
    data = (root / "ctc.nemo").read_bytes()
    (root / "truncated.nemo").write_bytes(data[: len(data) // 2])
    wave = 0.1 * np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    soundfile.write(root / "a.wav", wave, 16000)
    (root / "text.wav").write_text("RIFF? no, just text\n")
    good = {"audio_filepath": "a.wav", "duration": 1.0, "text": "go left"}
    jsonl(root / "good.jsonl", [good])
    jsonl(root / "bad_json.jsonl", [good, '{"audio_filepath": "a.wav", "duration": 1'])
    jsonl(root / "no_text.jsonl", [{"audio_filepath": "a.wav", "duration": 1.0}])
    jsonl(root / "zero.jsonl", [{**good, "duration": 0}])
    jsonl(root / "gone.jsonl", [{**good, "audio_filepath": "gone.wav"}])
    jsonl(root / "past_end.jsonl", [{**good, "offset": 5.0, "duration": 1.0}])
    jsonl(root / "untokenizable.jsonl", [{**good, "text": "GO LEFT!"}])
    (root / "lm.arpa").write_text("\\data\\\nngram 1=1\n\n\\1-grams:\n-1.0\n\\end\\\n")
    (root / "hyps.jsonl").write_text("KEEP: a previous evaluation\n")
    (root / "out_dir").mkdir()
    train = {
        "model": {**CTC, "train_ds": {"manifest_filepath": str(root / "good.jsonl")}},
        "trainer": {"max_steps": 1, "accelerator": "cpu"},
        "exp_manager": {"exp_dir": str(root / "exp"), "name": "run"},
    }
    (root / "train.yaml").write_text(yaml.safe_dump(train))
    (root / "broken.yaml").write_text("model:\n  labels: [a, b\n")
    return root


def snapshot(root: Path) -> dict:
    """Every file and folder under `root`: path -> content hash (None: a folder)."""
    return {
        str(path.relative_to(root)): (
            None if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
        )
        for path in sorted(root.rglob("*"))
    }


# (argv with {w} for the world folder, the words the one-line message must contain)
CASES = {
    # train
    "train-missing-config": (["train", "{w}/nope.yaml"], ["nope.yaml"]),
    "train-malformed-yaml": (["train", "{w}/broken.yaml"], ["broken.yaml:"]),
    "train-misspelt-override": (
        ["train", "{w}/train.yaml", "trainer.max_stesp=3"],
        ["trainer.max_stesp", "trainer.max_steps"],
    ),
    "train-override-wrong-type": (
        ["train", "{w}/train.yaml", "trainer.max_steps=many"],
        ["trainer.max_steps=many", "wrong type"],
    ),
    "train-misspelt-model-key": (
        ["train", "{w}/train.yaml", "+model.preprocessor.featurs=16"],
        ["model.preprocessor", "'featurs'", "did you mean 'features'"],
    ),
    "train-config-of-another-model": (
        ["train", "{w}/train.yaml", "model._target_=minispeech.asr.TransducerModel"],
        ["model.joint (JointNetwork)", "missing required keys: joint_hidden"],
    ),
    # inspect
    "inspect-missing-file": (["inspect", "{w}/nope.nemo"], ["nope.nemo", "no such"]),
    "inspect-corrupt-file": (["inspect", "{w}/corrupt.nemo"], ["corrupt.nemo"]),
    "inspect-truncated-file": (["inspect", "{w}/truncated.nemo"], ["truncated.nemo"]),
    "inspect-a-manifest": (["inspect", "{w}/good.jsonl"], ["good.jsonl"]),
    # manifest check
    "manifest-no-action": (["manifest"], ["required: action"]),
    "manifest-missing": (["manifest", "check", "{w}/nope.jsonl"], ["nope.jsonl"]),
    "manifest-invalid-json": (
        ["manifest", "check", "{w}/bad_json.jsonl"],
        ["bad_json.jsonl:2: json: invalid JSON"],
    ),
    "manifest-zero-duration": (
        ["manifest", "check", "{w}/zero.jsonl"],
        ["zero.jsonl:1: duration: must be positive"],
    ),
    # corpus
    "corpus-unknown-action": (["corpus", "rebuild"], ["unknown action 'rebuild'"]),
    "corpus-no-action": (["corpus"], ["no action given"]),
    "corpus-noisy-missing-manifest": (
        ["corpus", "noisy", "{w}/nope.jsonl", "--out", "{w}/noisy"],
        ["nope.jsonl"],
    ),
    "corpus-noisy-no-out": (["corpus", "noisy", "{w}/good.jsonl"], ["--out"]),
    "corpus-noisy-unknown-kind": (
        ["corpus", "noisy", "{w}/good.jsonl", "--out", "{w}/noisy", "--kinds", "red"],
        ["--kinds", "'red'"],
    ),
    # evaluate
    "evaluate-missing-model": (
        ["evaluate", "{w}/nope.nemo", "{w}/good.jsonl"],
        ["nope.nemo"],
    ),
    "evaluate-corrupt-model": (
        ["evaluate", "{w}/corrupt.nemo", "{w}/good.jsonl", "--out", "{w}/hyps.jsonl"],
        ["corrupt.nemo"],
    ),
    "evaluate-model-outside-the-package": (
        ["evaluate", "{w}/tiny.nemo", "{w}/good.jsonl"],
        ["tiny_model.TinyModel", "outside the minispeech package"],
    ),
    "evaluate-missing-manifest": (
        ["evaluate", "{w}/ctc.nemo", "{w}/nope.jsonl"],
        ["nope.jsonl", "not found"],
    ),
    "evaluate-manifest-without-text": (
        ["evaluate", "{w}/ctc.nemo", "{w}/no_text.jsonl"],
        ["no_text.jsonl:1: text: missing"],
    ),
    "evaluate-missing-audio": (
        ["evaluate", "{w}/ctc.nemo", "{w}/gone.jsonl", "--out", "{w}/new.jsonl"],
        ["gone.jsonl:1: audio_filepath", "gone.wav"],
    ),
    "evaluate-untokenizable-text": (
        ["evaluate", "{w}/ctc.nemo", "{w}/untokenizable.jsonl"],
        ["untokenizable.jsonl:1: text"],
    ),
    "evaluate-segment-past-the-end": (
        ["evaluate", "{w}/ctc.nemo", "{w}/past_end.jsonl", "--out", "{w}/hyps.jsonl"],
        ["past_end.jsonl:1: offset", "a.wav"],
    ),
    "evaluate-batch-size-0": (
        ["evaluate", "{w}/ctc.nemo", "{w}/good.jsonl", "--batch-size", "0"],
        ["--batch-size", "must be >= 1, got 0"],
    ),
    "evaluate-misspelt-override": (
        ["evaluate", "{w}/ctc.nemo", "{w}/good.jsonl", "decoding.beam_sise=4"],
        ["model.decoding", "'beam_sise'", "did you mean 'beam_size'"],
    ),
    "evaluate-override-without-value": (
        ["evaluate", "{w}/ctc.nemo", "{w}/good.jsonl", "decoding.strategy"],
        ["'decoding.strategy'", "key=value"],
    ),
    "evaluate-bad-strategy": (
        ["evaluate", "{w}/ctc.nemo", "{w}/good.jsonl", "decoding.strategy=bem"],
        ["model.decoding.strategy 'bem'", "greedy or beam"],
    ),
    "evaluate-override-that-changes-the-weights": (
        ["evaluate", "{w}/ctc.nemo", "{w}/good.jsonl", "encoder.d_model=32"],
        ["ctc.nemo", "encoder.d_model=32", "does not match"],
    ),
    "evaluate-lm-on-a-transducer": (
        ["evaluate", "{w}/rnnt.nemo", "{w}/good.jsonl", "--lm", "{w}/lm.arpa"],
        ["model.decoding", "unknown key 'lm_path'"],
    ),
    "evaluate-missing-lm": (
        ["evaluate", "{w}/ctc.nemo", "{w}/good.jsonl", "--lm", "{w}/nope.arpa"],
        ["--lm", "nope.arpa"],
    ),
    "evaluate-malformed-lm": (
        ["evaluate", "{w}/ctc.nemo", "{w}/good.jsonl", "--lm", "{w}/lm.arpa"]
        + ["--out", "{w}/hyps.jsonl"],
        ["model.decoding.lm_path", "lm.arpa:5"],
    ),
    "evaluate-bad-device": (
        ["evaluate", "{w}/ctc.nemo", "{w}/good.jsonl", "--device", "tpu"],
        ["--device tpu"],
    ),
    "evaluate-out-is-a-folder": (
        ["evaluate", "{w}/ctc.nemo", "{w}/good.jsonl", "--out", "{w}/out_dir"],
        ["--out", "out_dir", "folder"],
    ),
    "evaluate-hypotheses-of-a-non-asr-model": (
        ["evaluate", "{w}/tiny.nemo", "{w}/good.jsonl", "--trust-targets"]
        + ["--out", "{w}/new.jsonl"],
        ["--out needs an ASR model", "TinyModel"],
    ),
    # transcribe
    "transcribe-nothing-to-do": (["transcribe", "{w}/ctc.nemo"], ["give audio files"]),
    "transcribe-missing-audio": (
        ["transcribe", "{w}/ctc.nemo", "{w}/nope.wav"],
        ["nope.wav"],
    ),
    "transcribe-not-audio": (
        ["transcribe", "{w}/ctc.nemo", "{w}/text.wav"],
        ["text.wav", "not a readable audio file"],
    ),
    "transcribe-batch-size-0": (
        ["transcribe", "{w}/ctc.nemo", "{w}/a.wav", "--batch-size", "0"],
        ["--batch-size", "must be >= 1, got 0"],
    ),
    "transcribe-batch-size-not-a-number": (
        ["transcribe", "{w}/ctc.nemo", "{w}/a.wav", "--batch-size", "x"],
        ["--batch-size", "not an integer: 'x'"],
    ),
    "transcribe-segment-past-the-end": (
        ["transcribe", "{w}/ctc.nemo", "--manifest", "{w}/past_end.jsonl"],
        ["past_end.jsonl:1: offset: 5.0 s is past the end"],
    ),
    "transcribe-malformed-manifest": (
        ["transcribe", "{w}/ctc.nemo", "--manifest", "{w}/bad_json.jsonl"],
        ["bad_json.jsonl:2: json"],
    ),
    "transcribe-timestamps-of-a-transducer": (
        ["transcribe", "{w}/rnnt.nemo", "{w}/a.wav", "--timestamps"],
        ["--timestamps needs a CTC model", "TransducerModel"],
    ),
    "transcribe-a-non-asr-model": (
        ["transcribe", "{w}/tiny.nemo", "{w}/a.wav"],
        ["tiny.nemo", "outside the minispeech package"],
    ),
    "transcribe-corrupt-model": (
        ["transcribe", "{w}/truncated.nemo", "{w}/a.wav"],
        ["truncated.nemo"],
    ),
    # lm
    "lm-missing-manifest": (
        ["lm", "{w}/nope.jsonl", "--out", "{w}/lm.arpa"],
        ["nope.jsonl"],
    ),
    "lm-manifest-without-text": (
        ["lm", "{w}/no_text.jsonl", "--out", "{w}/new.arpa"],
        ["no_text.jsonl:1: text: missing"],
    ),
    "lm-order-0": (
        ["lm", "{w}/good.jsonl", "--out", "{w}/new.arpa", "--order", "0"],
        ["--order", "must be >= 1, got 0"],
    ),
    "lm-no-out": (["lm", "{w}/good.jsonl"], ["--out"]),
    "lm-out-is-a-folder": (
        ["lm", "{w}/good.jsonl", "--out", "{w}/out_dir"],
        ["--out", "out_dir", "folder"],
    ),
    # the verb itself
    "unknown-verb": (["trian", "x.yaml"], ["unknown verb 'trian'", "'train'"]),
}


@pytest.mark.parametrize("argv, words", CASES.values(), ids=CASES.keys())
def test_bad_input_is_one_line_exit_2_and_writes_nothing(world, argv, words, capsys):
    argv = [arg.replace("{w}", str(world)) for arg in argv]
    before = snapshot(world)
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.endswith("\n"), err
    # `minispeech <verb>: ...`, or `minispeech <verb> <action>: ...` (argparse)
    program = err.split(":", 1)[0]
    if argv[0] in VERBS:
        programs = [f"minispeech {' '.join(argv[:n])}" for n in (1, 2)]
        assert program in programs, err
    else:
        assert program == "minispeech", err
    assert "Traceback" not in err
    assert all(word in err for word in words), (words, err)
    assert snapshot(world) == before  # nothing written, changed or lost
    print(err, file=sys.__stdout__) if SHOW else None


@pytest.mark.parametrize("verb", ["evaluate", "transcribe"])
def test_an_unsupported_nemo_model_is_one_line(nemo_ref, world, verb, capsys):
    speaker_model = nemo_ref / "masking_tiny.nemo"  # an enhancement model
    data = str(world / ("good.jsonl" if verb == "evaluate" else "a.wav"))
    assert main([verb, str(speaker_model), data]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"minispeech {verb}: {speaker_model}: NeMo model class")
