"""Transducer prediction and joint networks.

Graves 2012, "Sequence Transduction with Recurrent Neural Networks" (arXiv:1211.3711),
Sec. 2.1-2.3: the prediction network (an RNN over the previous labels, started from the
null symbol) gives g_u, the transcription network (here: any encoder) gives f_t, and the
joint network maps (f_t, g_u) to Pr(k | t, u) over the labels and blank. As in NeMo's
RNNTJoint, the joint is  logits(t, u) = W_out act(W_enc f_t + W_pred g_u) + b_out.

Differs from the paper: the start symbol is blank, embedded as a zero vector
(`padding_idx`), an LSTM instead of a plain RNN, an additive joint instead of Graves'
product. Parameter names follow NeMo's RNNTDecoder / RNNTJoint (`prediction.embed`,
`prediction.dec_rnn.lstm`, `enc`, `pred`, `joint_net.2`), so NeMo weights load by name.
Blank is the last index (vocab_size), as in NeMo.
"""

from typing import Optional

import torch
from torch import Tensor, nn

from minispeech.nn.dropout import Dropout

# LSTM state: (h, c), each (n_layers, B, pred_hidden)
State = tuple[Tensor, Tensor]

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


class LSTMDropout(nn.Module):
    """A multi-layer LSTM followed by dropout (NeMo's `dec_rnn`, key `dec_rnn.lstm`)."""

    def __init__(
        self, d_in: int, d_hidden: int, n_layers: int, dropout: float, forget_gate_bias
    ):
        super().__init__()
        self.lstm = nn.LSTM(
            d_in,
            d_hidden,
            n_layers,
            batch_first=True,
            dropout=dropout if n_layers > 1 else 0.0,
        )
        self.dropout = Dropout(dropout)
        if forget_gate_bias is not None:  # gates are ordered i, f, g, o
            with torch.no_grad():
                for name, bias in self.lstm.named_parameters():
                    if name.startswith("bias_ih"):
                        bias[d_hidden : 2 * d_hidden].fill_(forget_gate_bias)
                    elif name.startswith("bias_hh"):
                        bias[d_hidden : 2 * d_hidden].zero_()

    def forward(self, x: Tensor, state: Optional[State]) -> tuple[Tensor, State]:
        out, state = self.lstm(x, state)  # (B,U,Dh)
        return self.dropout(out), state


class PredictionNetwork(nn.Module):
    """Embedding + LSTM over previous labels; blank (= vocab_size) is the start symbol.

    vocab_size counts the labels without blank (as the tokenizers do); the embedding has
    vocab_size + 1 rows and the blank row is held at zero.
    """

    def __init__(
        self,
        vocab_size: int,
        pred_hidden: int = 640,
        pred_rnn_layers: int = 1,
        dropout: float = 0.0,
        forget_gate_bias: Optional[float] = 1.0,
    ):
        super().__init__()
        self.vocab_size, self.blank, self.pred_hidden = (
            vocab_size,
            vocab_size,
            pred_hidden,
        )
        embed = nn.Embedding(vocab_size + 1, pred_hidden, padding_idx=vocab_size)
        rnn = LSTMDropout(
            pred_hidden, pred_hidden, pred_rnn_layers, dropout, forget_gate_bias
        )
        self.prediction = nn.ModuleDict({"embed": embed, "dec_rnn": rnn})

    def forward(
        self, targets: Tensor, state: Optional[State] = None
    ) -> tuple[Tensor, State]:
        """targets (B,U) -> g (B,U+1,pred_hidden): g[:, u] has seen blank, y_1..y_u.

        Padding in targets only affects positions after each utterance's length.
        """
        assert targets.ndim == 2, f"targets must be (B,U), got {tuple(targets.shape)}"
        start = targets.new_full((targets.shape[0], 1), self.blank)
        labels = torch.cat([start, targets.clamp(0, self.blank)], dim=1)  # (B,U+1)
        return self.prediction["dec_rnn"](self.prediction["embed"](labels), state)

    def step(
        self, labels: Tensor, state: Optional[State] = None
    ) -> tuple[Tensor, State]:
        """One label per utterance: labels (B,) -> g (B,pred_hidden), new state.

        state None is the all-zero start state; feed blank first.
        """
        assert labels.ndim == 1, f"labels must be (B,), got {tuple(labels.shape)}"
        out, state = self.prediction["dec_rnn"](
            self.prediction["embed"](labels[:, None]), state
        )
        return out[:, 0], state  # (B,Dh)

    def step_function(self):
        """A function with `step`'s contract, for decoding loops: labels (B,), state
        -> (g (B,pred_hidden), new state), gradient-free.

        In eval mode it runs the LSTM cell's equations itself (Hochreiter and
        Schmidhuber 1997; PyTorch's nn.LSTM gate order i, f, g, o):
            gates = W_ih x + b_ih + W_hh h + b_hh,  c' = s(f) c + s(i) tanh(g),
            h' = s(o) tanh(c'),
        with layer 0's input term looked up instead of computed: x is a label's
        embedding, so W_ih x + b_ih + b_hh is precomputed for every label once (one
        (V+1, 4H) table per call of this method). One step is then a row gather, one
        matmul and a few pointwise ops per layer, without nn.LSTM's per-call setup,
        which costs more than the arithmetic at decoding's batch sizes. In training
        mode (dropout active) it returns `step` itself. Build it again after the
        weights change.
        """
        lstm = self.prediction["dec_rnn"].lstm
        if self.training or lstm.proj_size:
            return self.step
        with torch.no_grad():
            weights, biases = [], []  # per layer: (w_ih, w_hh), b_ih + b_hh
            for params in lstm.all_weights:
                weights.append((params[0].detach(), params[1].detach()))
                n_gates = params[0].shape[0]  # 4H
                bias = params[2] + params[3] if lstm.bias else torch.zeros(n_gates)
                biases.append(bias.detach().to(params[0]))
            embed = self.prediction["embed"].weight.detach()  # (V+1, H)
            # (V+1, 4H): layer 0's input term for every label
            table = torch.addmm(biases[0], embed, weights[0][0].t())
        n_layers, hidden = lstm.num_layers, self.pred_hidden

        @torch.no_grad()
        def step(labels: Tensor, state: Optional[State] = None):
            if state is None:
                zeros = table.new_zeros(n_layers, labels.shape[0], hidden)
                state = (zeros, zeros)
            h, c = state  # (L, B, H) each
            x_term = table[labels]  # (B, 4H)
            new_h, new_c = [], []
            for layer in range(n_layers):
                w_ih, w_hh = weights[layer][:2]
                if layer > 0:  # input: the layer below's new h
                    x_term = torch.addmm(biases[layer], new_h[-1], w_ih.t())
                gates = torch.addmm(x_term, h[layer], w_hh.t())  # (B, 4H)
                sig = torch.sigmoid(gates)
                i, f, _, o = sig.chunk(4, dim=1)
                g = torch.tanh(gates[:, 2 * hidden : 3 * hidden])
                c_new = torch.addcmul(f * c[layer], i, g)  # (B, H)
                new_c.append(c_new)
                new_h.append(o * torch.tanh(c_new))
            return new_h[-1], (torch.stack(new_h), torch.stack(new_c))

        return step


class JointNetwork(nn.Module):
    """Additive joint: linear(enc) + linear(pred) -> activation -> dropout -> linear.

    Output size is vocab_size + 1 (blank last) + num_extra_outputs (the TDT durations).
    Returns raw logits; the losses apply log-softmax themselves.
    """

    def __init__(
        self,
        encoder_hidden: int,
        pred_hidden: int,
        joint_hidden: int,
        vocab_size: int,
        activation: str = "relu",
        dropout: float = 0.0,
        num_extra_outputs: int = 0,
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}"
            )
        self.vocab_size, self.blank = vocab_size, vocab_size
        self.num_extra_outputs = num_extra_outputs
        self.enc = nn.Linear(encoder_hidden, joint_hidden)
        self.pred = nn.Linear(pred_hidden, joint_hidden)
        # index 2 is the output layer as in NeMo (`joint_net.2`): dropout kept at p=0
        self.joint_net = nn.Sequential(
            ACTIVATIONS[activation](),
            Dropout(dropout),
            nn.Linear(joint_hidden, vocab_size + 1 + num_extra_outputs),
        )

    def forward(self, enc: Tensor, pred: Tensor) -> Tensor:
        """enc (B,T,D_enc), pred (B,U+1,D_pred) -> logits (B,T,U+1,V)."""
        assert enc.ndim == 3 and pred.ndim == 3, (
            f"got {tuple(enc.shape)}, {tuple(pred.shape)}"
        )
        f = self.project_encoder(enc)[:, :, None]  # (B,T,1,Dh)
        g = self.project_prediction(pred)[:, None]  # (B,1,U+1,Dh)
        return self.joint_projected(f, g)  # (B,T,U+1,V)

    def joint(self, enc: Tensor, pred: Tensor) -> Tensor:
        """NeMo's name for forward."""
        return self.forward(enc, pred)

    def step(self, enc_t: Tensor, pred_u: Tensor) -> Tensor:
        """Single step: enc_t (B,D_enc), pred_u (B,D_pred) -> logits (B,V)."""
        return self.joint_projected(
            self.project_encoder(enc_t), self.project_prediction(pred_u)
        )

    def project_encoder(self, enc: Tensor) -> Tensor:
        return self.enc(enc)  # (...,Dh)

    def project_prediction(self, pred: Tensor) -> Tensor:
        return self.pred(pred)  # (...,Dh)

    def joint_projected(self, f: Tensor, g: Tensor) -> Tensor:
        """Projected, broadcastable f (...,H) and g (...,H) -> logits (...,V)."""
        return self.joint_net(f + g)
