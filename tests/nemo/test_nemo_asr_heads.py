"""import_nemo returns whole models: NeMo's CTC log-probs and transducer joint outputs,
and NeMo's own greedy transcripts (shared/nemo_reference, nemo_toolkit 3.0.0)."""

import json

import numpy as np
import pytest
import torch

from minispeech.asr import CTCModel, TransducerModel
from minispeech.core.model import restore_from
from minispeech.nemo import import_nemo

CASES = ("single_a", "single_b", "batch_acb")


def reference(nemo_ref, name):
    return import_nemo(nemo_ref / f"{name}.nemo"), np.load(nemo_ref / f"{name}_io.npz")


def greedy_text(nemo_ref, name, case):
    """NeMo's greedy transcripts, stored in the JSON beside the arrays."""
    meta = json.loads((nemo_ref / f"{name}_io.json").read_text())
    return meta["npz_keys"][f"{case}/greedy_text"]


def inputs(ref, case):
    return torch.from_numpy(ref[f"{case}/input_signal"]), torch.from_numpy(
        ref[f"{case}/input_length"]
    )


def waves(ref, case):
    audio, lens = inputs(ref, case)
    return [audio[b, :n] for b, n in enumerate(lens.tolist())]


@pytest.mark.parametrize("name", ["conformer_ctc_tiny", "fastconformer_ctc_tiny"])
def test_ctc_log_probs_and_greedy_text_equal_nemo(nemo_ref, name):
    model, ref = reference(nemo_ref, name)
    assert isinstance(model, CTCModel) and model.blank == 28
    for case in CASES:
        with torch.no_grad():
            log_probs, lens = model(*inputs(ref, case))  # (B, T', V)
        want = ref[f"{case}/log_probs"]
        for b, n in enumerate(lens.tolist()):
            assert np.abs(log_probs[b, :n].numpy() - want[b, :n]).max() <= 1e-4, (
                case,
                b,
            )
        assert model.transcribe(waves(ref, case)) == greedy_text(nemo_ref, name, case)


def test_transducer_joint_and_greedy_text_equal_nemo(nemo_ref):
    model, ref = reference(nemo_ref, "fastconformer_rnnt_tiny")
    assert isinstance(model, TransducerModel) and model.blank == 28
    for case in CASES:
        targets = torch.from_numpy(ref[f"{case}/targets"])
        with torch.no_grad():
            enc, enc_lens = model(*inputs(ref, case))  # (B, D, T')
            pred, _ = model.decoder(targets)  # (B, U+1, H)
            joint = model.joint(enc.transpose(1, 2), pred).log_softmax(
                -1
            )  # (B, T', U+1, V)
        want = ref[f"{case}/joint_out"]  # log-softmaxed on CPU by NeMo
        for b, n in enumerate(enc_lens.tolist()):
            assert np.abs(joint[b, :n].numpy() - want[b, :n]).max() <= 1e-4, (case, b)
        texts = model.transcribe(waves(ref, case))
        # includes the empty transcript and the one capped at 10 symbols per frame
        assert texts == greedy_text(nemo_ref, "fastconformer_rnnt_tiny", case)
    assert "" in texts and max(map(len, texts)) > 100


def test_imported_model_saves_and_restores_as_minispeech(nemo_ref, tmp_path):
    model, ref = reference(nemo_ref, "conformer_ctc_tiny")
    again = restore_from(model.save_to(tmp_path / "imported.nemo"))
    want = greedy_text(nemo_ref, "conformer_ctc_tiny", "batch_acb")
    assert again.transcribe(waves(ref, "batch_acb")) == want
