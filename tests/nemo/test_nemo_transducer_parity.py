"""Prediction net, joint, RNN-T loss and greedy decoding on NeMo's own transducer.

shared/nemo_reference/fastconformer_rnnt_tiny.nemo holds the weights; its _io.npz holds
NeMo's encoder outputs and, computed from them by NeMo 3.0: the prediction-net output,
the raw joint logits, the model's mean_volume RNN-T loss and greedy_batch token ids
(max_symbols 10; item 1 decodes to nothing, item 2 hits the cap).
"""

import io
import tarfile

import numpy as np
import pytest
import torch
from torch import nn

from minispeech.asr.rnnt import rnnt_loss
from minispeech.asr.rnnt_decoding import rnnt_greedy_decode, rnnt_greedy_decode_single
from minispeech.asr.transducer_nets import JointNetwork, PredictionNetwork

BLANK = 28  # 28 characters, blank last


@pytest.fixture
def nemo_transducer(nemo_ref):
    folder = nemo_ref
    with tarfile.open(folder / "fastconformer_rnnt_tiny.nemo") as tar:
        weights = tar.extractfile("./model_weights.ckpt").read()
    state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
    model = nn.Module()
    model.decoder = PredictionNetwork(vocab_size=28, pred_hidden=64, dropout=0.2)
    model.joint = JointNetwork(
        64, 64, 64, vocab_size=28, activation="relu", dropout=0.2
    )
    keys = model.state_dict().keys()
    model.load_state_dict({k: state[k] for k in keys})
    ref = np.load(folder / "fastconformer_rnnt_tiny_io.npz")
    return model.eval(), {k: torch.from_numpy(ref[k]) for k in ref.files}


@pytest.mark.parametrize("case", ["single_a", "batch_acb"])
def test_prediction_joint_and_loss_match_nemo(nemo_transducer, case):
    model, ref = nemo_transducer
    with torch.no_grad():
        pred, _ = model.decoder(ref[f"{case}/targets"])  # (B,U+1,H)
        expected = ref[f"{case}/pred_out"].transpose(1, 2)  # (B,H,U+1) -> (B,U+1,H)
        torch.testing.assert_close(pred, expected, rtol=1e-5, atol=1e-5)
        enc = ref[f"{case}/encoded"].transpose(1, 2)  # (B,D,T') -> (B,T',D)
        logits = model.joint(enc, pred)  # (B,T',U+1,V)
    expected = ref[f"{case}/joint_logits_raw"]
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-4)
    loss = rnnt_loss(
        logits,
        ref[f"{case}/targets"],
        ref[f"{case}/encoded_length"],
        ref[f"{case}/target_length"],
        blank=BLANK,
        reduction="mean_volume",
    )
    torch.testing.assert_close(
        loss, ref[f"{case}/rnnt_loss_model"], rtol=1e-5, atol=1e-5
    )


def test_greedy_matches_nemo_including_empty_and_capped(nemo_transducer):
    model, ref = nemo_transducer
    enc = ref["batch_acb/encoded"].transpose(1, 2)  # (B,T',D)
    lens = ref["batch_acb/encoded_length"]
    expected = [ref[f"batch_acb/greedy_ids_{b}"].tolist() for b in range(3)]
    assert expected[1] == [] and len(expected[2]) == 115  # the cases the file promises
    hyps = rnnt_greedy_decode(model.decoder, model.joint, enc, lens, max_symbols=10)
    assert hyps == expected
    for b in range(3):
        single = rnnt_greedy_decode_single(
            model.decoder, model.joint, enc[b, : lens[b]]
        )
        assert single == expected[b]
