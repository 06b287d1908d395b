"""minispeech evaluate / transcribe / lm on a small model and the bundled corpus."""

import json
from pathlib import Path

import pytest
import soundfile
import torch
from test_asr_models import CTC_CFG, RNNT_CFG  # noqa: E402  (tests/asr is on sys.path)
from tiny_model import TinyModel, tiny_config

from minispeech.asr import CTCModel, TransducerModel
from minispeech.asr.ngram_lm import NGramLM
from minispeech.audio import load_audio
from minispeech.cli import main
from minispeech.data import read_manifest, write_manifest
from minispeech.metrics.wer import cer, wer

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def model_file(tmp_path):
    return CTCModel(CTC_CFG).save_to(tmp_path / "ctc.nemo")


@pytest.fixture
def manifest(tmp_path):
    rows = read_manifest(REPO / "data/tinyspeech/dev.jsonl")[:3]
    return write_manifest(tmp_path / "dev3.jsonl", rows) or tmp_path / "dev3.jsonl"


def metric_lines(out: str) -> dict:
    """The `  val_wer      0.9500` lines of `minispeech evaluate` -> {name: value}."""
    pairs = [line.split() for line in out.splitlines() if line.startswith("  val_")]
    return {name: float(value) for name, value in pairs}


def test_evaluate_prints_the_models_metrics_and_writes_hypotheses(
    model_file, manifest, tmp_path, capsys
):
    out = tmp_path / "hyps" / "hyps.jsonl"
    assert main(["evaluate", str(model_file), str(manifest), "--out", str(out)]) == 0
    metrics = metric_lines(capsys.readouterr().out)
    assert set(metrics) == {"val_loss", "val_wer", "val_cer"}
    rows = read_manifest(out, required=("text", "pred_text"))  # paths resolve
    assert len(rows) == 3
    refs, hyps = [r["text"] for r in rows], [r["pred_text"] for r in rows]
    assert metrics["val_wer"] == pytest.approx(wer(refs, hyps), abs=1e-4)
    assert metrics["val_cer"] == pytest.approx(cer(refs, hyps), abs=1e-4)


def test_evaluate_overrides_and_their_aliases_agree(tmp_path, manifest, capsys):
    path = TransducerModel(RNNT_CFG).save_to(tmp_path / "rnnt.nemo")
    args = ["evaluate", str(path), str(manifest)]
    assert main([*args, "decoding.strategy=beam", "decoding.beam_size=3"]) == 0
    by_override = metric_lines(capsys.readouterr().out)
    assert main([*args, "--beam", "3"]) == 0
    assert metric_lines(capsys.readouterr().out) == by_override
    assert main([*args, "decoding.beam_sise=3"]) == 2  # the model's own key check
    err = capsys.readouterr().err
    assert err.startswith("minispeech evaluate: model.decoding: unknown key")
    assert "did you mean 'beam_size'" in err


def test_evaluate_works_for_any_model(tmp_path, manifest, capsys):
    """A non-ASR SpeechModel: its own dataset, validation_step and metrics."""
    cfg = tiny_config(tmp_path)["model"]
    path = TinyModel(cfg).save_to(tmp_path / "tiny.nemo")
    assert main(["evaluate", str(path), str(manifest), "--trust-targets"]) == 0
    assert set(metric_lines(capsys.readouterr().out)) == {"val_loss"}
    out = tmp_path / "hyps.jsonl"
    argv = ["evaluate", str(path), str(manifest), "--trust-targets", "--out", str(out)]
    assert main(argv) == 2 and not out.exists()
    assert "--out needs an ASR model" in capsys.readouterr().err


def segment_manifest(tmp_path, manifest, offset_extra=0.0):
    """Two utterances in one WAV; a manifest of the second as a segment."""
    first, second = read_manifest(manifest)[:2]
    waves = [
        load_audio(r["audio_filepath"], sample_rate=16000)[0] for r in (first, second)
    ]
    long = tmp_path / "long.wav"
    soundfile.write(long, torch.cat(waves).numpy(), 16000, subtype="FLOAT")
    offset = waves[0].numel() / 16000 + offset_extra
    row = {
        "audio_filepath": str(long),
        "offset": offset,
        "duration": waves[1].numel() / 16000,
        "text": second["text"],
    }
    segments = write_manifest(tmp_path / "segments.jsonl", [row])
    single = write_manifest(tmp_path / "single.jsonl", [second])
    return segments, single


def test_evaluate_and_transcribe_decode_only_the_segment(
    model_file, manifest, tmp_path, capsys
):
    segments, single = segment_manifest(tmp_path, manifest)
    hyps = []
    for name in (segments, single):
        out = tmp_path / f"{name.stem}.hyps.jsonl"
        assert main(["evaluate", str(model_file), str(name), "--out", str(out)]) == 0
        hyps.append(read_manifest(out)[0]["pred_text"])
    assert hyps[0] == hyps[1]
    capsys.readouterr()
    assert main(["transcribe", str(model_file), "--manifest", str(segments)]) == 0
    name, text = capsys.readouterr().out.rstrip("\n").split("\t")
    assert name.endswith(
        "long.wav@" + format(read_manifest(segments)[0]["offset"], "g")
    )
    assert text == hyps[0]


def test_a_segment_past_the_end_names_the_manifest_line(
    model_file, manifest, tmp_path, capsys
):
    segments, _ = segment_manifest(tmp_path, manifest, offset_extra=60.0)
    for verb in ("evaluate", "transcribe"):
        extra = ["--manifest"] if verb == "transcribe" else []
        assert main([verb, str(model_file), *extra, str(segments)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"minispeech {verb}: {segments}:1: offset:"), err


def test_transcribe_with_beam_lm_and_timestamps(model_file, manifest, tmp_path, capsys):
    lm = tmp_path / "lm.arpa"
    assert (
        main(["lm", str(REPO / "data/tinyspeech/train.jsonl"), "--out", str(lm)]) == 0
    )
    assert lm.read_text().startswith("\\data\\") or "\\data\\" in lm.read_text()
    wav = read_manifest(manifest)[0]["audio_filepath"]
    capsys.readouterr()
    assert (
        main(["transcribe", str(model_file), wav, "--beam", "4", "--lm", str(lm)]) == 0
    )
    assert capsys.readouterr().out.startswith(wav)
    args = ["transcribe", str(model_file), wav, "--beam", "4", "--lm", str(lm)]
    assert main([*args, "--lexicon", str(lm)]) == 0
    words = capsys.readouterr().out.split("\t")[-1].split()
    assert set(words) <= NGramLM.load(lm).words()  # only the LM's words
    assert main(["transcribe", str(model_file), wav, "--timestamps"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"audio_filepath", "text", "words"}


def test_model_beam_search_finds_a_label_sequence_at_least_as_likely_as_greedy():
    """ln p(y|x) summed over alignments (the CTC loss) of the beam's answer
    >= greedy's."""
    from minispeech.nn import ctc_loss

    model = CTCModel(CTC_CFG).eval()
    waves = [torch.randn(n) * 0.1 for n in (12000, 8000)]
    greedy = model.transcribe(waves)
    model.decoding.update(strategy="beam", beam_size=16)
    beam = model.transcribe(waves)
    for wave, a, b in zip(waves, greedy, beam):
        with torch.no_grad():
            log_probs, lens = model(wave[None], torch.tensor([wave.numel()]))

        def logp(text, log_probs=log_probs, lens=lens):
            ids = torch.tensor([model.tokenizer.encode(text)])
            return -float(
                ctc_loss(
                    log_probs,
                    ids,
                    lens,
                    torch.tensor([ids.shape[1]]),
                    blank=model.blank,
                    reduction="sum",
                )
            )

        assert logp(b) >= logp(a) - 1e-4, (a, b)


def test_timestamps_need_a_ctc_model(tmp_path, manifest):
    path = TransducerModel(RNNT_CFG).save_to(tmp_path / "rnnt.nemo")
    wav = read_manifest(manifest)[0]["audio_filepath"]
    assert main(["transcribe", str(path), wav, "--timestamps"]) == 2
