"""minispeech evaluate / transcribe / lm on a small model and the bundled corpus."""

import json
from pathlib import Path

import pytest
import torch
from test_asr_models import CTC_CFG, RNNT_CFG  # noqa: E402  (tests/asr is on sys.path)

from minispeech.asr import CTCModel
from minispeech.cli import main
from minispeech.data import read_manifest, write_manifest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def model_file(tmp_path):
    return CTCModel(CTC_CFG).save_to(tmp_path / "ctc.nemo")


@pytest.fixture
def manifest(tmp_path):
    rows = read_manifest(REPO / "data/tinyspeech/dev.jsonl")[:3]
    return write_manifest(tmp_path / "dev3.jsonl", rows) or tmp_path / "dev3.jsonl"


def test_evaluate_prints_wer_and_writes_hypotheses(
    model_file, manifest, tmp_path, capsys
):
    out = tmp_path / "hyps.jsonl"
    assert main(["evaluate", str(model_file), str(manifest), "--out", str(out)]) == 0
    assert "WER" in capsys.readouterr().out
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3 and all("pred_text" in r for r in rows)


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
    assert main(["transcribe", str(model_file), wav, "--timestamps"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"audio_filepath", "text", "words"}


def test_model_beam_search_finds_a_label_sequence_at_least_as_likely_as_greedy():
    """ln p(y|x) summed over alignments (the CTC loss) of the beam's answer
    >= greedy's."""
    from minispeech.asr import ctc_loss

    model = CTCModel(CTC_CFG).eval()
    waves = [torch.randn(n) * 0.1 for n in (12000, 8000)]
    greedy = model.transcribe(waves)
    model.decoding.update(strategy="beam", beam_width=16)
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
    from minispeech.asr import TransducerModel

    path = TransducerModel(RNNT_CFG).save_to(tmp_path / "rnnt.nemo")
    wav = read_manifest(manifest)[0]["audio_filepath"]
    assert main(["transcribe", str(path), wav, "--timestamps"]) == 2
