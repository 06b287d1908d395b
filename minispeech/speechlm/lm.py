"""A GPT-style decoder-only Transformer language model with an explicit key/value cache.

Radford et al. 2019, "Language Models are Unsupervised Multitask Learners" (GPT-2),
Sec. 2.3: a Transformer decoder without cross-attention, LayerNorm moved to the input of
each sub-block (pre-LN) plus a final LayerNorm, residual projections scaled at init by
1/sqrt(N) for N residual layers (N = 2 n_layers; base std 0.02 as in GPT-1);
next-token loss -log p(s_n | s_1 .. s_{n-1}) (their Eq. 1).
The output layer shares the token embedding (Press & Wolf 2017, arXiv:1608.05859).
Positions are rotary (Su et al. 2021, RoFormer, arXiv:2104.09864, Eq. 34; see
nn/positional.py) or a learned table added to the input (GPT-2).

A SpeechLM splices audio frames into the prompt, so `forward` takes either tokens or
`inputs_embeds` (B, L, D) built with `embed` (token embeddings only, no positions).
`attention_mask` (B, L_total) marks real positions (True) over the cache and the new
positions together; padding may sit anywhere, left padding being the batched-generation
case. A padded key is never attended to, and the position of a real token counts real
tokens only (position = cumsum(mask) - 1), so a left-padded item gives the logits of
the unpadded one. Step-by-step decoding passes `LMCache` in and gets the grown one back.

Differences from GPT-2: the feed-forward is nn/transformer.py's ReLU FeedForward
(Vaswani Eq. 2) instead of GELU; rotary positions are the default; one `dropout` for
embeddings, residuals and attention weights (as GPT-2's single pdrop).
"""

import math
from dataclasses import dataclass

import torch
from torch import nn

from minispeech.nn.attention import MultiHeadAttention
from minispeech.nn.dropout import Dropout
from minispeech.nn.positional import RotaryEmbedding
from minispeech.nn.transformer import FeedForward

POSITIONS = ("rotary", "learned")


@dataclass
class LMCache:
    """What step-by-step decoding carries between calls."""

    # per layer: keys/values of every position so far, (B, H, L_past, d_k) each;
    # rotary keys are stored already rotated
    kv: list[tuple[torch.Tensor, torch.Tensor]]
    # (B, L_past) bool, True = real position (the attention_mask so far)
    mask: torch.Tensor

    @property
    def length(self) -> int:
        """Number of positions (real and padded) already in the cache."""
        return self.mask.size(1)


class LMBlock(nn.Module):
    """x + SelfAttn(LN(x)) (causal), then x + FFN(LN(x)). (B, L, D) -> (B, L, D)."""

    def __init__(self, d_model, n_heads, d_ff, dropout=0.0, impl="reference"):
        super().__init__()
        self.norm_self_att = nn.LayerNorm(d_model)
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout, True, impl)
        self.norm_feed_forward = nn.LayerNorm(d_model)
        self.feed_forward = FeedForward(d_model, d_ff, dropout)
        self.dropout = Dropout(dropout)

    def forward(self, x, positions, past_kv, mask, rotary=None):
        """x (B, L, D) new positions; positions (B, L); past_kv keys/values of the
        cached positions (or None); mask (B, L, L_past + L) bool, True = may attend.
        Returns (x (B, L, D), keys/values so far (B, H, L_past + L, d_k) each)."""
        h = self.norm_self_att(x)
        q = self.self_attn.project_q(h)  # (B, H, L, d_k)
        k, v = self.self_attn.project_kv(h, h)  # (B, H, L, d_k)
        if rotary is not None:
            q, k = rotary(q, positions), rotary(k, positions)
        if past_kv is not None:
            k = torch.cat([past_kv[0], k], dim=2)  # (B, H, L_past + L, d_k)
            v = torch.cat([past_kv[1], v], dim=2)
        x = x + self.dropout(self.self_attn.attend(q, k, v, mask))
        x = x + self.dropout(self.feed_forward(self.norm_feed_forward(x)))
        return x, (k, v)


class TransformerLM(nn.Module):
    """tokens (B, L) or inputs_embeds (B, L, D) -> logits (B, L, V), LMCache."""

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 128,
        n_layers: int = 2,
        n_heads: int = 4,
        ff_expansion_factor: int = 4,
        max_len: int = 512,
        dropout: float = 0.0,
        positions: str = "rotary",
        tie_embedding: bool = True,
        use_pytorch_sdpa: bool = False,
    ):
        super().__init__()
        if positions not in POSITIONS:
            raise ValueError(f"positions must be one of {POSITIONS}, got {positions!r}")
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        self.vocab_size, self.d_model, self.max_len = vocab_size, d_model, max_len
        self.embedding = nn.Embedding(vocab_size, d_model)
        # rotary: no parameters, applied to q and k in every layer; learned: a table
        self.rotary = (
            RotaryEmbedding(d_model // n_heads) if positions == "rotary" else None
        )
        self.pos_emb = (
            nn.Embedding(max_len, d_model) if positions == "learned" else None
        )
        self.dropout_emb = Dropout(dropout)
        impl = "sdpa" if use_pytorch_sdpa else "reference"
        d_ff = d_model * ff_expansion_factor
        self.layers = nn.ModuleList(
            LMBlock(d_model, n_heads, d_ff, dropout, impl) for _ in range(n_layers)
        )
        self.norm_out = nn.LayerNorm(d_model)
        self.output = nn.Linear(d_model, vocab_size, bias=False)
        self.init_weights(n_layers)
        if tie_embedding:
            self.output.weight = self.embedding.weight  # one (V, D) matrix for both

    def init_weights(self, n_layers: int) -> None:
        """N(0, 0.02) weights (GPT-1 Sec. 4.1), zero biases (LayerNorms keep 1, 0),
        and the projections into the residual stream scaled by 1/sqrt(2 n_layers)
        (GPT-2 Sec. 2.3)."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        for name, p in self.named_parameters():
            if name.endswith(("linear_out.weight", "linear2.weight")):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * n_layers))

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token embeddings only (no positions): tokens (B, L) -> (B, L, D)."""
        assert tokens.dim() == 2, f"tokens must be (B, L), got {tuple(tokens.shape)}"
        return self.embedding(tokens)  # (B, L, D)

    def forward(
        self,
        tokens: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        cache: LMCache | None = None,
    ) -> tuple[torch.Tensor, LMCache]:
        """Logits of the new positions (B, L, V) and the cache grown by them.

        Exactly one of tokens (B, L) and inputs_embeds (B, L, D). attention_mask
        (B, L_past + L) bool covers the cache and the new positions and must begin
        with cache.mask (None: cache.mask, then every new position real). The logits
        of a padded position are meaningless.
        """
        if (tokens is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of tokens and inputs_embeds")
        x = self.embed(tokens) if inputs_embeds is None else inputs_embeds  # (B, L, D)
        assert x.dim() == 3 and x.size(-1) == self.d_model, (
            f"inputs_embeds must be (B, L, {self.d_model}), got {tuple(x.shape)}"
        )
        past = 0 if cache is None else cache.length
        mask = self.full_mask(attention_mask, cache, x)  # (B, L_past + L)
        # position of a real token = number of real tokens before it
        positions = (mask.long().cumsum(dim=1) - 1).clamp(min=0)[:, past:]  # (B, L)
        if self.pos_emb is not None:
            x = x + self.pos_emb(positions)  # (B, L, D)
        x = self.dropout_emb(x)
        att_mask = self.causal_mask(mask, past)  # (B, L, L_past + L)
        new_kv = []
        for i, layer in enumerate(self.layers):
            past_kv = None if cache is None else cache.kv[i]
            x, kv = layer(x, positions, past_kv, att_mask, self.rotary)
            new_kv.append(kv)
        logits = self.output(self.norm_out(x))  # (B, L, V)
        return logits, LMCache(new_kv, mask)

    def full_mask(self, attention_mask, cache, x) -> torch.Tensor:
        """The (B, L_past + L) bool mask of cache + new positions, checked."""
        b, length = x.shape[:2]
        past = 0 if cache is None else cache.length
        if attention_mask is None:
            new = torch.ones(b, length, dtype=torch.bool, device=x.device)  # (B, L)
            attention_mask = new if cache is None else torch.cat([cache.mask, new], 1)
        assert attention_mask.shape == (b, past + length), (
            f"attention_mask must be (B, L_past + L) = ({b}, {past + length}), "
            f"got {tuple(attention_mask.shape)}"
        )
        if attention_mask.size(1) > self.max_len:
            raise ValueError(
                f"sequence of {attention_mask.size(1)} positions > max_len "
                f"{self.max_len}"
            )
        return attention_mask.bool()

    @staticmethod
    def causal_mask(mask: torch.Tensor, past: int) -> torch.Tensor:
        """(B, L, L_past + L) bool: query i (at index past + i) sees keys 0 .. past + i
        that are real. mask (B, L_past + L) bool."""
        total = mask.size(1)
        q_idx = torch.arange(past, total, device=mask.device).unsqueeze(1)  # (L, 1)
        k_idx = torch.arange(total, device=mask.device)  # (L_past + L,)
        return (k_idx <= q_idx).unsqueeze(0) & mask.unsqueeze(1)  # (B, L, L_past + L)
