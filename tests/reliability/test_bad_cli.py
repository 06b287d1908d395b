"""Bad command lines, for every verb of `minispeech`: each is refused with exit code 2
and ONE line on stderr, `minispeech <verb>: ...`, that names the file, line, field or
option at fault; no traceback; and nothing in the working folder is written, changed or
lost (no partial output, a pre-existing output or model file is left as it was).

The verbs run in-process (`minispeech.cli.main`) against tiny models saved once per
module: a CTC and a transducer model (1 conformer layer), a non-ASR TinyModel and a
speaker model (a 2-block TitaNet).
"""

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import yaml
from tiny_model import TINY_CONFORMER, TinyModel, tiny_config

from minispeech.asr import CTCModel, TransducerModel
from minispeech.asr.aed_model import AEDModel
from minispeech.asr.aed_tokenizer import build_aggregate_tokenizer
from minispeech.cli import VERBS, main
from minispeech.speaker import SpeakerModel
from minispeech.speechlm import SALMModel, TextLMModel
from minispeech.tts.fastpitch_model import FastPitchModel

SHOW = os.environ.get("SHOW_ERRORS")  # print each message (to read them all)
LABELS = [" "] + [chr(c) for c in range(ord("a"), ord("z") + 1)] + ["'"]
CTC = {
    "_target_": "minispeech.asr.CTCModel",
    "labels": LABELS,
    "preprocessor": {"features": 16, "dither": 0.0},
    "encoder": {**TINY_CONFORMER, "subsampling_conv_channels": 8},
    "optim": {"name": "adam", "lr": 1e-3},
}
RNNT = {
    **CTC,
    "_target_": "minispeech.asr.TransducerModel",
    "decoder": {"pred_hidden": 16},
    "joint": {"joint_hidden": 16},
}

SPEAKER = {
    "_target_": "minispeech.speaker.SpeakerModel",
    "labels": ["ann", "bob"],
    "preprocessor": {"features": 16, "dither": 0.0},
    "encoder": {
        "_target_": "minispeech.speaker.TitaNetEncoder",
        "feat_in": 16,
        "jasper": [{"filters": 8, "kernel": [3]}, {"filters": 8, "kernel": [1]}],
    },
    "decoder": {"emb_sizes": 8, "attention_channels": 8, "pool_mode": "attention"},
}

AED = {
    "_target_": "minispeech.asr.AEDModel",
    "preprocessor": {"features": 16, "dither": 0.0},
    "encoder": CTC["encoder"],
    "decoder": {"d_model": 16, "n_layers": 1, "n_heads": 2, "max_len": 32},
}
FFT = {"n_layer": 1, "n_head": 1, "d_model": 16, "d_head": 8, "d_inner": 16}
PREDICTOR = {"filter_size": 8, "n_layers": 1}
FASTPITCH = {
    "_target_": "minispeech.tts.FastPitchModel",
    "sample_rate": 16000,
    "max_token_length": 40,
    "preprocessor": {"features": 16, "n_fft": 256, "dither": 0.0, "normalize": None},
    "input_fft": FFT,
    "output_fft": FFT,
    "alignment_module": {"n_att_channels": 8},
    "duration_predictor": PREDICTOR,
    "pitch_predictor": PREDICTOR,
    "optim": {"name": "adam", "lr": 1e-3},
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
    SpeakerModel(SPEAKER).save_to(root / "spk.nemo")
    FastPitchModel(FASTPITCH).save_to(root / "fastpitch.nemo")
    build_aggregate_tokenizer(["go left", "go right now"] * 10, root / "agg", 24)
    AEDModel({**AED, "tokenizer": {"dir": str(root / "agg")}}).save_to(
        root / "aed.nemo"
    )
    shutil.rmtree(root / "agg")  # the model file holds its tokenizer
    make_speechlm(root)
    (root / "corrupt.nemo").write_bytes(b"not a tar archive " * 64)
    data = (root / "ctc.nemo").read_bytes()
    (root / "truncated.nemo").write_bytes(data[: len(data) // 2])
    wave = 0.1 * np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    soundfile.write(root / "a.wav", wave, 16000)
    soundfile.write(root / "short.wav", wave[:3200], 16000)  # 0.2 s
    quiet = 0.001 * wave[:8000]  # 0.5 s: a burst between quiet parts holds speech
    soundfile.write(root / "burst.wav", np.concatenate([quiet, wave, quiet]), 16000)
    (root / "text.wav").write_text("RIFF? no, just text\n")
    good = {"audio_filepath": "a.wav", "duration": 1.0, "text": "go left"}
    jsonl(root / "good.jsonl", [good])
    jsonl(root / "bad_json.jsonl", [good, '{"audio_filepath": "a.wav", "duration": 1'])
    jsonl(root / "no_text.jsonl", [{"audio_filepath": "a.wav", "duration": 1.0}])
    jsonl(root / "zero.jsonl", [{**good, "duration": 0}])
    jsonl(root / "gone.jsonl", [{**good, "audio_filepath": "gone.wav"}])
    jsonl(root / "past_end.jsonl", [{**good, "offset": 5.0, "duration": 1.0}])
    jsonl(root / "untokenizable.jsonl", [{**good, "text": "GO LEFT!"}])
    jsonl(root / "enroll.jsonl", [{**good, "speaker": "ann"}])
    digits = {**good, "audio_filepath": "short.wav", "text": "call 911"}
    jsonl(root / "digits.jsonl", [good, digits])
    jsonl(
        root / "short_enroll.jsonl",
        [
            {**good, "speaker": "ann"},
            {**good, "audio_filepath": "short.wav", "duration": 0.2, "speaker": "bob"},
        ],
    )
    (root / "trials_gone.txt").write_text("1 a.wav a.wav\n0 a.wav gone.wav\n")
    (root / "trials_label.txt").write_text("yes a.wav a.wav\n")
    (root / "trials_fields.txt").write_text("1 a.wav\n")
    (root / "trials_one_kind.txt").write_text("1 a.wav a.wav\n")
    (root / "trials_ok.txt").write_text("1 a.wav a.wav\n0 a.wav a.wav\n")
    (root / "trials_short.txt").write_text("1 a.wav a.wav\n0 a.wav short.wav\n")
    (root / "lm.arpa").write_text("\\data\\\nngram 1=1\n\n\\1-grams:\n-1.0\n\\end\\\n")
    (root / "hyps.jsonl").write_text("KEEP: a previous evaluation\n")
    (root / "words.txt").write_text("hello\nworld\n")
    (root / "empty.txt").write_text("\n")
    turn = "SPEAKER rec 1 {} {} <NA> <NA> {} <NA> <NA>\n"
    (root / "ref.rttm").write_text(
        turn.format(0.0, 0.5, "ann") + turn.format(0.5, 0.5, "bob")
    )
    (root / "bad.rttm").write_text(
        turn.format(0.0, 0.5, "ann") + "SPEAKER rec 1 0.5 x\n"
    )
    (root / "overlap.uem").write_text("rec 1 0.0 0.8\nrec 1 0.5 1.0\n")
    diar = {"audio_filepath": "a.wav", "offset": 0, "duration": None}
    jsonl(root / "diar_no_audio.jsonl", [{**diar, "audio_filepath": "gone.wav"}])
    (root / "out_dir").mkdir()
    train = {
        "model": {**CTC, "train_ds": {"manifest_filepath": str(root / "good.jsonl")}},
        "trainer": {"max_steps": 1, "accelerator": "cpu"},
        "exp_manager": {"exp_dir": str(root / "exp"), "name": "run"},
    }
    (root / "train.yaml").write_text(yaml.safe_dump(train))
    (root / "broken.yaml").write_text("model:\n  labels: [a, b\n")
    return root


def make_speechlm(root: Path) -> None:
    """salm.nemo on ctc.nemo's encoder (width 16) and a tiny chat LM; ctc_wide.nemo, a
    CTC file of another width; qa.jsonl, one question about a.wav."""
    qa = {"audio_filepath": "a.wav", "duration": 1.0, "prompt": "what day is it",
          "answer": "go left", "question_type": "transcribe"}  # fmt: skip
    jsonl(root / "qa.jsonl", [qa])
    lm = TextLMModel({
        "tokenizer": {"dir": str(root / "chat"), "vocab_size": 30,
                      "train_manifest": str(root / "qa.jsonl")},
        "lm": {"d_model": 16, "n_layers": 1, "n_heads": 2},
    })  # fmt: skip
    lm.save_to(root / "chat_lm.nemo")
    shutil.rmtree(root / "chat")
    CTCModel({**CTC, "encoder": {**CTC["encoder"], "d_model": 24}}).save_to(
        root / "ctc_wide.nemo"
    )
    files = {
        "asr_model": str(root / "ctc.nemo"),
        "lm_model": str(root / "chat_lm.nemo"),
    }
    SALMModel({**files, "adapter": {"n_layers": 0}}).save_to(root / "salm.nemo")


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
    "corpus-trials-manifest-without-speaker": (
        ["corpus", "trials", "{w}/good.jsonl", "--out", "{w}/trials.txt"],
        ["good.jsonl:1: speaker: missing"],
    ),
    "corpus-trials-one-speaker": (
        ["corpus", "trials", "{w}/enroll.jsonl", "--out", "{w}/trials.txt"],
        ["enroll.jsonl", ">= 2 speakers"],
    ),
    "corpus-trials-no-out": (["corpus", "trials", "{w}/enroll.jsonl"], ["--out"]),
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
    "evaluate-missing-lexicon": (
        ["evaluate", "{w}/ctc.nemo", "{w}/good.jsonl", "--lexicon", "{w}/nope.txt"],
        ["--lexicon", "nope.txt", "no such file"],
    ),
    "evaluate-empty-lexicon": (
        ["evaluate", "{w}/ctc.nemo", "{w}/good.jsonl", "--lexicon", "{w}/empty.txt"],
        ["model.decoding.lexicon", "empty.txt", "the lexicon is empty"],
    ),
    "evaluate-lexicon-with-greedy": (
        ["evaluate", "{w}/ctc.nemo", "{w}/good.jsonl"]
        + ['decoding.lexicon="{w}/words.txt"'],
        ["model.decoding.lexicon", "set strategy=beam"],
    ),
    "evaluate-lexicon-not-a-path": (
        ["evaluate", "{w}/ctc.nemo", "{w}/good.jsonl", "decoding.lexicon=3"],
        ["model.decoding.lexicon", "a file path, got 3"],
    ),
    "transcribe-aed-missing-lexicon": (
        ["transcribe", "{w}/aed.nemo", "{w}/a.wav", "--lexicon", "{w}/nope.txt"],
        ["--lexicon", "nope.txt", "no such file"],
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
    # embed, verify, identify (speaker models)
    "embed-no-out": (["embed", "{w}/spk.nemo", "{w}/a.wav"], ["--out"]),
    "embed-too-short-audio": (
        ["embed", "{w}/spk.nemo", "{w}/short.wav", "--out", "{w}/e.npy"],
        ["short.wav", "too short", "minimum 0.25 s"],
    ),
    "embed-too-short-manifest-line": (
        ["embed", "{w}/spk.nemo", "--manifest", "{w}/short_enroll.jsonl"]
        + ["--out", "{w}/e.npy"],
        ["short_enroll.jsonl:2:", "short.wav", "too short"],
    ),
    "embed-out-is-a-folder": (
        ["embed", "{w}/spk.nemo", "{w}/a.wav", "--out", "{w}/out_dir"],
        ["--out", "out_dir", "folder"],
    ),
    "embed-an-asr-model": (
        ["embed", "{w}/ctc.nemo", "{w}/a.wav", "--out", "{w}/e.npy"],
        ["ctc.nemo", "CTCModel", "not a speaker model"],
    ),
    "verify-an-asr-model": (
        ["verify", "{w}/ctc.nemo", "{w}/a.wav", "{w}/a.wav"],
        ["ctc.nemo", "CTCModel", "not a speaker model"],
    ),
    "verify-one-file": (
        ["verify", "{w}/spk.nemo", "{w}/a.wav"],
        ["give two audio files (got 1)"],
    ),
    "verify-missing-audio": (
        ["verify", "{w}/spk.nemo", "{w}/a.wav", "{w}/nope.wav"],
        ["nope.wav"],
    ),
    "verify-too-short-audio": (
        ["verify", "{w}/spk.nemo", "{w}/a.wav", "{w}/short.wav"],
        ["short.wav", "too short"],
    ),
    "verify-threshold-out-of-range": (
        ["verify", "{w}/spk.nemo", "{w}/a.wav", "{w}/a.wav", "--threshold", "1.5"],
        ["--threshold", "must be in [0, 1], got 1.5"],
    ),
    "verify-missing-trials": (
        ["verify", "{w}/spk.nemo", "--trials", "{w}/nope.txt"],
        ["--trials", "nope.txt", "no such file"],
    ),
    "verify-trials-missing-audio": (
        ["verify", "{w}/spk.nemo", "--trials", "{w}/trials_gone.txt"]
        + ["--out", "{w}/scores.txt"],
        ["trials_gone.txt:2:", "gone.wav"],
    ),
    "verify-trials-malformed-label": (
        ["verify", "{w}/spk.nemo", "--trials", "{w}/trials_label.txt"],
        ["trials_label.txt:1: label 'yes': must be 0 or 1"],
    ),
    "verify-trials-two-fields": (
        ["verify", "{w}/spk.nemo", "--trials", "{w}/trials_fields.txt"],
        ["trials_fields.txt:1:", "got 2 fields"],
    ),
    "verify-trials-of-one-kind": (
        ["verify", "{w}/spk.nemo", "--trials", "{w}/trials_one_kind.txt"],
        ["trials_one_kind.txt", "target (1) and non-target (0)"],
    ),
    "verify-trials-too-short-audio": (
        ["verify", "{w}/spk.nemo", "--trials", "{w}/trials_short.txt"],
        ["trials_short.txt:2:", "short.wav", "too short"],
    ),
    "verify-trials-an-asr-model": (
        ["verify", "{w}/rnnt.nemo", "--trials", "{w}/trials_ok.txt"],
        ["rnnt.nemo", "TransducerModel", "not a speaker model"],
    ),
    "verify-trials-out-is-a-folder": (
        ["verify", "{w}/spk.nemo", "--trials", "{w}/trials_short.txt"]
        + ["--out", "{w}/out_dir"],
        ["--out", "out_dir", "folder"],
    ),
    "identify-enrollment-without-speaker": (
        ["identify", "{w}/spk.nemo", "--enroll", "{w}/good.jsonl", "{w}/a.wav"],
        ["good.jsonl:1: speaker: missing"],
    ),
    "identify-no-enrollment": (
        ["identify", "{w}/spk.nemo", "{w}/a.wav"],
        ["--enroll"],
    ),
    "identify-too-short-audio": (
        ["identify", "{w}/spk.nemo", "--enroll", "{w}/enroll.jsonl", "{w}/short.wav"],
        ["short.wav", "too short"],
    ),
    "identify-an-asr-model": (
        ["identify", "{w}/ctc.nemo", "--enroll", "{w}/enroll.jsonl", "{w}/a.wav"],
        ["ctc.nemo", "not a speaker model"],
    ),
    # diarize, der
    "der-malformed-rttm-line": (
        ["der", "--ref", "{w}/ref.rttm", "--hyp", "{w}/bad.rttm"],
        ["bad.rttm:2:"],
    ),
    "der-overlapping-uem": (
        ["der", "--ref", "{w}/ref.rttm", "--hyp", "{w}/ref.rttm"]
        + ["--uem", "{w}/overlap.uem"],
        ["overlap.uem:2:", "overlap"],
    ),
    "diarize-more-speakers-than-segments": (
        ["diarize", "{w}/spk.nemo", "{w}/burst.wav", "--out", "{w}/rttm"]
        + ["--num-speakers", "50"],
        ["burst.wav", "num_speakers 50", "segments"],
    ),
    "diarize-missing-audio-in-manifest": (
        ["diarize", "{w}/spk.nemo", "--manifest", "{w}/diar_no_audio.jsonl"]
        + ["--out", "{w}/rttm"],
        ["diar_no_audio.jsonl:1:", "gone.wav"],
    ),
    "diarize-an-asr-model": (
        ["diarize", "{w}/ctc.nemo", "{w}/a.wav", "--out", "{w}/rttm"],
        ["ctc.nemo", "not a speaker model"],
    ),
    # enhance
    "enhance-missing-audio": (
        ["enhance", "wiener", "{w}/a.wav", "{w}/nope.wav", "--out", "{w}/enh"],
        ["nope.wav"],
    ),
    "enhance-an-asr-model": (
        ["enhance", "{w}/ctc.nemo", "{w}/a.wav", "--out", "{w}/enh"],
        ["ctc.nemo", "CTCModel"],
    ),
    "enhance-unknown-method": (
        ["enhance", "{w}/wienr", "{w}/a.wav", "--out", "{w}/enh"],
        ["wienr"],
    ),
    # transcribe with an attention encoder-decoder
    "transcribe-unknown-prompt-token": (
        ["transcribe", "{w}/aed.nemo", "{w}/a.wav", "--prompt"]
        + ["<|startoftranscript|><|xx|><|transcribe|><|en|><|nopnc|>"],
        ["--prompt", "<|xx|>"],
    ),
    "transcribe-prompt-not-tokens": (
        ["transcribe", "{w}/aed.nemo", "{w}/a.wav", "--prompt", "hello <|en|>"],
        ["--prompt", "special tokens only"],
    ),
    "transcribe-prompt-on-a-ctc-model": (
        ["transcribe", "{w}/ctc.nemo", "{w}/a.wav", "--pnc"],
        ["--pnc/--prompt need an AED model", "CTCModel"],
    ),
    "transcribe-aed-beam-zero": (
        ["transcribe", "{w}/aed.nemo", "{w}/a.wav", "--beam", "0"],
        ["--beam", "must be >= 1"],
    ),
    "transcribe-aed-with-an-lm": (
        ["transcribe", "{w}/aed.nemo", "{w}/a.wav", "--lm", "{w}/lm.arpa"],
        ["--lm", "with --rescore only"],
    ),
    # synthesize
    "synthesize-unknown-character": (
        [
            "synthesize",
            "{w}/fastpitch.nemo",
            "--text",
            "call 911",
            "--out",
            "{w}/x.wav",
        ],
        ["--text", "'9'", "position 5"],
    ),
    "synthesize-unknown-character-in-manifest": (
        ["synthesize", "{w}/fastpitch.nemo", "--manifest", "{w}/digits.jsonl"]
        + ["--out", "{w}/tts"],
        ["digits.jsonl:2", "'9'"],
    ),
    "synthesize-empty-text": (
        ["synthesize", "{w}/fastpitch.nemo", "--text", "  ", "--out", "{w}/x.wav"],
        ["--text", "empty"],
    ),
    "synthesize-text-too-long": (
        ["synthesize", "{w}/fastpitch.nemo", "--text", "go " * 30]
        + ["--out", "{w}/x.wav"],
        ["--text", "too long", "max_token_length=40"],
    ),
    "synthesize-pace-zero": (
        ["synthesize", "{w}/fastpitch.nemo", "--text", "go", "--pace", "0"]
        + ["--out", "{w}/x.wav"],
        ["--pace", "> 0"],
    ),
    "synthesize-an-asr-model": (
        ["synthesize", "{w}/ctc.nemo", "--text", "go", "--out", "{w}/x.wav"],
        ["ctc.nemo", "not a FastPitch model"],
    ),
    "synthesize-an-asr-model-as-vocoder": (
        ["synthesize", "{w}/fastpitch.nemo", "--text", "go", "--out", "{w}/x.wav"]
        + ["--vocoder", "{w}/ctc.nemo"],
        ["--vocoder", "ctc.nemo", "not a vocoder"],
    ),
    "synthesize-text-and-manifest": (
        ["synthesize", "{w}/fastpitch.nemo", "--text", "go", "--manifest"]
        + ["{w}/good.jsonl", "--out", "{w}/x.wav"],
        ["exactly one of --text and --manifest"],
    ),
    "synthesize-out-not-wav": (
        ["synthesize", "{w}/fastpitch.nemo", "--text", "go", "--out", "{w}/x.mp3"],
        ["--out", "x.mp3", ".wav"],
    ),
    # ask a SpeechLM
    "ask-two-placeholders": (
        ["ask", "{w}/salm.nemo", "{w}/a.wav", "<|audio|> what day <|audio|>"],
        ["exactly one <|audio|> placeholder, found 2"],
    ),
    "ask-empty-question": (
        ["ask", "{w}/salm.nemo", "{w}/a.wav", "  "],
        ["question is empty"],
    ),
    "ask-an-asr-model": (
        ["ask", "{w}/ctc.nemo", "{w}/a.wav", "what day is it"],
        ["ctc.nemo", "not a SpeechLM"],
    ),
    "evaluate-speechlm-on-an-encoder-of-another-width": (
        ["evaluate", "{w}/salm.nemo", "{w}/qa.jsonl", "asr_model={w}/ctc_wide.nemo"],
        ["asr_model", "24 wide", "encoder_width 16"],
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
def test_an_unsupported_nemo_model_is_one_line(world, verb, capsys, tmp_path):
    other_model = tmp_path / "tacotron.nemo"  # a NeMo class minispeech lacks
    write_nemo_file(other_model, "nemo.collections.tts.models.Tacotron2Model")
    data = str(world / ("good.jsonl" if verb == "evaluate" else "a.wav"))
    assert main([verb, str(other_model), data]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"minispeech {verb}: {other_model}: NeMo model class")


def write_nemo_file(path, target: str) -> None:
    """A minimal NeMo-layout tar: a config naming `target` and empty weights."""
    import io
    import tarfile

    import torch
    import yaml

    members = {"./model_config.yaml": yaml.safe_dump({"target": target}).encode()}
    weights = io.BytesIO()
    torch.save({}, weights)
    members["./model_weights.ckpt"] = weights.getvalue()
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
