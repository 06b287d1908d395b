"""FastPitch's per-token predictors and the learned aligner's attention.

TemporalPredictor: Lancucki 2021, "FastPitch: Parallel Text-to-speech with Pitch
Prediction" (arXiv:2006.06873), Sec. 2 and Fig. 1: the duration and pitch
predictors are (conv k, ReLU, LayerNorm, dropout) x n_layers, then a linear layer
to one value per token; the duration predictor outputs log(1 + d) (as NeMo).

AlignmentEncoder: Badlani et al. 2022, "One TTS Alignment To Rule Them All"
(arXiv:2108.10447), Sec. 2: text and mel frames are encoded by small conv
stacks (keys: conv 3, ReLU, conv 1; queries: conv 3, ReLU, conv 1, ReLU, conv 1) and
the soft alignment is a softmax over tokens of the negative squared L2 distance,
    D[i, j] = ||query_i - key_j||^2,   A_soft[i, :] = softmax_j(-temperature D[i, :]);
with the static beta-binomial prior it becomes (NeMo's order of operations)
    log A[i, j] = log_softmax_j(-temperature D[i, :]) + log(prior[i, j] + 1e-8).
`attn_logprob` (input of the forward-sum loss) is that map before masking; padded
tokens are then set to -inf and `attn_soft` = softmax over tokens. Without a prior,
attn_logprob is -temperature D itself (no log_softmax), as in NeMo.

Names and layouts follow NeMo (nemo/collections/tts/modules/fastpitch.py and
aligner.py) so its weights load by key. Differs from NeMo: with `mask_padding=True`
(the default) the predictor zeroes padded tokens after every conv layer, so an item's
prediction does not depend on the batch it is padded in; NeMo masks only the input
and the output, so its second conv sees the first one's output on padding
(`mask_padding=False` reproduces it). The aligner zeroes padded text embeddings
before its key convs (NeMo's pad embedding row is zero, so nothing changes there).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from minispeech.nn.dropout import Dropout


class ConvReLUNorm(nn.Module):
    """conv k -> ReLU -> LayerNorm over channels -> dropout, on (B, C, T)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, dropout: float
    ):
        super().__init__()
        assert kernel_size % 2 == 1, f"kernel_size must be odd, got {kernel_size}"
        self.conv = nn.Conv1d(
            in_channels, out_channels, kernel_size, padding=kernel_size // 2
        )
        self.norm = nn.LayerNorm(out_channels)
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """x (B, C_in, T) -> (B, C_out, T)."""
        out = torch.relu(self.conv(x))  # (B, C_out, T)
        out = self.norm(out.transpose(1, 2)).transpose(1, 2)
        return self.dropout(out)


class TemporalPredictor(nn.Module):
    """Encoder output (B, U, D) -> one value per token (B, U), 0 on padding."""

    def __init__(
        self,
        input_size: int,
        filter_size: int,
        kernel_size: int = 3,
        dropout: float = 0.0,
        n_layers: int = 2,
        mask_padding: bool = True,
    ):
        super().__init__()
        self.mask_padding = mask_padding
        self.layers = nn.ModuleList(
            ConvReLUNorm(
                input_size if i == 0 else filter_size, filter_size, kernel_size, dropout
            )
            for i in range(n_layers)
        )
        self.fc = nn.Linear(filter_size, 1)

    def forward(self, enc: Tensor, mask: Tensor) -> Tensor:
        """enc (B, U, D), mask (B, U, 1) float -> (B, U)."""
        out = (enc * mask).transpose(1, 2)  # (B, D, U)
        channel_mask = mask.transpose(1, 2)  # (B, 1, U)
        for layer in self.layers:
            out = layer(out)  # (B, filter_size, U)
            if self.mask_padding:
                out = out * channel_mask
        out = self.fc(out.transpose(1, 2)) * mask  # (B, U, 1)
        return out.squeeze(-1)  # (B, U)


class PaddedConv1d(nn.Module):
    """A 'same'-padded Conv1d with Xavier-uniform weights (NeMo's ConvNorm)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, gain="linear"
    ):
        super().__init__()
        assert kernel_size % 2 == 1, f"kernel_size must be odd, got {kernel_size}"
        self.conv = nn.Conv1d(
            in_channels, out_channels, kernel_size, padding=kernel_size // 2
        )
        nn.init.xavier_uniform_(self.conv.weight, nn.init.calculate_gain(gain))

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)  # (B, C_out, T)


DISTANCE_IMPLS = ("reference", "matmul")


def squared_distance(queries: Tensor, keys: Tensor, impl: str = "matmul") -> Tensor:
    """D[b, i, j] = ||queries[b, :, i] - keys[b, :, j]||^2: (B, A, T), (B, A, U) ->
    (B, T, U). "reference" subtracts every pair, a (B, A, T, U) tensor as in NeMo;
    "matmul" expands ||q||^2 - 2 q.k + ||k||^2, several times faster and lighter
    (the difference is float32 rounding, ~1e-6 relative)."""
    if impl == "reference":
        diff = queries[:, :, :, None] - keys[:, :, None, :]  # (B, A, T, U)
        return diff.pow(2).sum(1)  # (B, T, U)
    cross = queries.transpose(1, 2) @ keys  # (B, T, U)
    q_norm = queries.pow(2).sum(1)[:, :, None]  # (B, T, 1)
    k_norm = keys.pow(2).sum(1)[:, None, :]  # (B, 1, U)
    return (q_norm - 2 * cross + k_norm).clamp_min(0.0)


class AlignmentEncoder(nn.Module):
    """Soft text-to-mel alignment (module docstring): attn_soft, attn_logprob."""

    def __init__(
        self,
        n_mel_channels: int = 80,
        n_text_channels: int = 512,
        n_att_channels: int = 80,
        temperature: float = 0.0005,
        impl: str = "matmul",
    ):
        super().__init__()
        assert impl in DISTANCE_IMPLS, f"impl must be one of {DISTANCE_IMPLS}: {impl}"
        self.temperature = temperature
        self.impl = impl
        n_text, n_mel = n_text_channels, n_mel_channels
        self.key_proj = nn.Sequential(
            PaddedConv1d(n_text, 2 * n_text, 3, gain="relu"),
            nn.ReLU(),
            PaddedConv1d(2 * n_text, n_att_channels, 1),
        )
        self.query_proj = nn.Sequential(
            PaddedConv1d(n_mel, 2 * n_mel, 3, gain="relu"),
            nn.ReLU(),
            PaddedConv1d(2 * n_mel, n_mel, 1),
            nn.ReLU(),
            PaddedConv1d(n_mel, n_att_channels, 1),
        )

    def forward(
        self,
        mels: Tensor,
        text_emb: Tensor,
        text_mask: Tensor,
        attn_prior: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """mels (B, M, T), text_emb (B, U, D), text_mask (B, U) bool (True = token),
        attn_prior (B, T, U) or None -> attn_soft, attn_logprob, each (B, 1, T, U)."""
        assert mels.dim() == 3 and text_emb.dim() == 3, (mels.shape, text_emb.shape)
        text = (text_emb * text_mask[..., None]).transpose(1, 2)  # (B, D, U)
        keys = self.key_proj(text)  # (B, A, U), A attention channels
        queries = self.query_proj(mels)  # (B, A, T)
        with torch.autocast(mels.device.type, enabled=False):  # float32 distances
            q, k = queries.float(), keys.float()
            dist = squared_distance(q, k, self.impl)  # (B, T, U)
        attn = -self.temperature * dist[:, None]  # (B, 1, T, U)
        if attn_prior is not None:
            attn = attn.log_softmax(dim=3) + torch.log(attn_prior[:, None] + 1e-8)
        attn_logprob = attn  # before masking: the forward-sum loss masks itself
        padded = ~text_mask[:, None, None, :]  # (B, 1, 1, U)
        attn_soft = attn.masked_fill(padded, -float("inf")).softmax(dim=3)
        return attn_soft, attn_logprob
