"""Prediction and joint networks: shapes, explicit state, step forms, NeMo key names."""

import pytest
import torch
from torch import nn

from minispeech.asr.transducer_nets import JointNetwork, PredictionNetwork


def test_prediction_forward_equals_steps_from_blank():
    net = PredictionNetwork(vocab_size=6, pred_hidden=8, pred_rnn_layers=2).eval()
    targets = torch.randint(0, 6, (3, 4))  # (B,U)
    g, (h, c) = net(targets)
    assert g.shape == (3, 5, 8) and h.shape == c.shape == (2, 3, 8)
    labels = torch.cat([torch.full((3, 1), net.blank), targets], dim=1)  # blank starts
    state = None
    for u in range(5):
        g_u, state = net.step(labels[:, u], state)
        torch.testing.assert_close(g_u, g[:, u], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(state[0], h, rtol=1e-5, atol=1e-6)
    # an explicit state continues a sequence exactly
    g_first, state_first = net(targets[:, :2])
    g_rest, _ = net.prediction["dec_rnn"](
        net.prediction["embed"](targets[:, 2:]), state_first
    )
    torch.testing.assert_close(g_rest, g[:, 3:], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("layers,bias", [(1, True), (2, True), (2, False)])
def test_step_function_equals_nn_lstm_step(layers, bias):
    """The decoding loops' step (its own LSTM cell, a per-label input table) gives
    nn.LSTM's outputs and states, from the start state and from a given one."""
    torch.manual_seed(layers)
    net = PredictionNetwork(vocab_size=7, pred_hidden=6, pred_rnn_layers=layers)
    if not bias:  # the same network without the LSTM's biases
        lstm = net.prediction["dec_rnn"].lstm
        net.prediction["dec_rnn"].lstm = nn.LSTM(
            6, 6, layers, batch_first=True, bias=False
        )
        assert lstm.bias and not net.prediction["dec_rnn"].lstm.bias
    net.eval()
    fast = net.step_function()
    labels = torch.tensor([7, 0, 3, 6])  # blank (start) and labels, B = 4
    state_ref = state_fast = None
    for _ in range(3):
        g_ref, state_ref = net.step(labels, state_ref)
        g_fast, state_fast = fast(labels, state_fast)
        torch.testing.assert_close(g_fast, g_ref, rtol=1e-5, atol=1e-6)
        for a, b in zip(state_fast, state_ref):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        labels = torch.randint(0, 8, (4,))
    assert net.train().step_function() == net.step  # dropout: the reference


def test_blank_embeds_to_zero_and_forget_gate_bias():
    net = PredictionNetwork(vocab_size=5, pred_hidden=4, forget_gate_bias=1.0)
    embed = net.prediction["embed"]
    assert embed.weight.shape == (6, 4) and embed.padding_idx == 5
    assert not embed(torch.tensor([5])).any()
    lstm = net.prediction["dec_rnn"].lstm
    assert torch.all(lstm.bias_ih_l0[4:8] == 1.0) and not lstm.bias_hh_l0[4:8].any()


def test_joint_matches_step_and_definition():
    joint = JointNetwork(
        encoder_hidden=5, pred_hidden=3, joint_hidden=7, vocab_size=4, activation="tanh"
    )
    enc, pred = (
        torch.randn(2, 6, 5),
        torch.randn(2, 3, 3),
    )  # (B,T,D_enc), (B,U+1,D_pred)
    logits = joint(enc, pred)
    assert logits.shape == (2, 6, 3, 5)
    hidden = torch.tanh(joint.enc(enc)[:, :, None] + joint.pred(pred)[:, None])
    torch.testing.assert_close(logits, joint.joint_net[2](hidden))
    torch.testing.assert_close(joint.step(enc[:, 4], pred[:, 1]), logits[:, 4, 1])
    tdt = JointNetwork(5, 3, 7, vocab_size=4, num_extra_outputs=5)
    assert tdt(enc, pred).shape == (2, 6, 3, 4 + 1 + 5)


@pytest.mark.parametrize("name, cls", [("relu", nn.ReLU), ("sigmoid", nn.Sigmoid)])
def test_joint_activations(name, cls):
    assert isinstance(JointNetwork(2, 2, 2, 2, activation=name).joint_net[0], cls)


def test_unknown_activation_is_named():
    with pytest.raises(ValueError, match="swish"):
        JointNetwork(2, 2, 2, 2, activation="swish")


def test_parameter_names_match_nemo(nemo_ref):
    """fastconformer_rnnt_tiny: 28 labels + blank, pred/joint hidden 64, encoder 64."""
    nemo = {}
    for line in (
        (nemo_ref / "fastconformer_rnnt_tiny_state_dict.txt").read_text().splitlines()
    ):
        key, shape = line.split("\t")[:2]
        if key.startswith(("decoder.", "joint.")):
            nemo[key] = tuple(int(n) for n in shape.strip("()").split(",") if n.strip())
    model = nn.Module()
    model.decoder = PredictionNetwork(vocab_size=28, pred_hidden=64)
    model.joint = JointNetwork(64, 64, 64, vocab_size=28, dropout=0.2)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == nemo
