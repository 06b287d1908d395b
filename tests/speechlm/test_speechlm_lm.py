"""TransformerLM: causal, cache == recomputation, left padding == unpadded, tied output,
rotary against explicit rotation matrices (float64), and it trains."""

import math

import pytest
import torch

from minispeech.nn.positional import RotaryEmbedding
from minispeech.speechlm.lm import TransformerLM

V = 13


def small_lm(**kwargs) -> TransformerLM:
    return TransformerLM(V, d_model=16, n_layers=2, n_heads=2, **kwargs).eval()


@pytest.mark.parametrize("positions", ["rotary", "learned"])
def test_causal_later_tokens_never_change_earlier_logits(positions):
    lm = small_lm(positions=positions)
    tokens = torch.randint(0, V, (2, 8))
    base, _ = lm(tokens)
    changed = tokens.clone()
    changed[:, 5] = (changed[:, 5] + 1) % V
    out, _ = lm(changed)
    assert torch.equal(out[:, :5], base[:, :5])
    assert (out[:, 5:] - base[:, 5:]).abs().max() > 1e-6


@pytest.mark.parametrize("positions", ["rotary", "learned"])
def test_cache_equals_full_recomputation(positions):
    lm = small_lm(positions=positions)
    tokens = torch.randint(0, V, (2, 9))
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[1, :3] = False  # item 1 is left-padded
    full, _ = lm(tokens, attention_mask=mask)
    # a chunk of four (as embeddings), then one at a time, then a chunk of two
    logits, cache = lm(
        inputs_embeds=lm.embed(tokens[:, :4]), attention_mask=mask[:, :4]
    )
    steps = [logits]
    for i in range(4, 7):
        logits, cache = lm(
            tokens[:, i : i + 1], attention_mask=mask[:, : i + 1], cache=cache
        )
        steps.append(logits)
    logits, cache = lm(tokens[:, 7:], cache=cache)  # mask None: cache.mask + real
    steps.append(logits)
    assert cache.length == 9 and cache.kv[0][0].shape == (2, 2, 9, 8)
    real = mask.unsqueeze(-1)
    assert ((torch.cat(steps, dim=1) - full) * real).abs().max() < 1e-5


@pytest.mark.parametrize("positions", ["rotary", "learned"])
def test_left_padding_gives_the_unpadded_logits(positions):
    lm = small_lm(positions=positions)
    a, b = torch.randint(0, V, (1, 7)), torch.randint(0, V, (1, 4))
    padded = torch.cat([torch.full((1, 3), 5), b], dim=1)  # 3 pads, any id
    tokens = torch.cat([a, padded])  # (2, 7)
    mask = torch.tensor([[True] * 7, [False] * 3 + [True] * 4])
    out, _ = lm(tokens, attention_mask=mask)
    alone_a, _ = lm(a)
    alone_b, _ = lm(b)
    assert (out[0] - alone_a[0]).abs().max() < 1e-5
    assert (out[1, 3:] - alone_b[0]).abs().max() < 1e-5
    assert torch.isfinite(out).all()  # padded queries see no key: zero rows, no NaN


def test_sdpa_path_equals_reference():
    ref = small_lm()
    fast = small_lm(use_pytorch_sdpa=True)
    fast.load_state_dict(ref.state_dict())
    tokens = torch.randint(0, V, (2, 6))
    mask = torch.tensor([[True] * 6, [False] * 2 + [True] * 4])
    a, _ = ref(tokens, attention_mask=mask)
    b, _ = fast(tokens, attention_mask=mask)
    assert ((a - b) * mask.unsqueeze(-1)).abs().max() < 1e-5


def test_tied_output_and_argument_errors():
    lm = small_lm()
    assert lm.output.weight is lm.embedding.weight
    untied = small_lm(tie_embedding=False)
    assert untied.output.weight is not untied.embedding.weight
    assert small_lm(positions="learned").pos_emb.weight.shape == (512, 16)
    with pytest.raises(ValueError, match="exactly one"):
        lm()
    with pytest.raises(ValueError, match="max_len"):
        TransformerLM(V, d_model=16, n_heads=2, max_len=4)(torch.zeros(1, 5).long())
    with pytest.raises(ValueError, match="positions"):
        TransformerLM(V, positions="sinusoid")


def rotation_matrix(m: int, d: int, base: float = 10000.0) -> torch.Tensor:
    """RoFormer Eq. 15: block-diagonal R^d_{Theta,m}, 2x2 blocks
    [[cos m theta_i, -sin m theta_i], [sin m theta_i, cos m theta_i]], float64."""
    r = torch.zeros(d, d, dtype=torch.float64)
    for i in range(d // 2):
        angle = m * base ** (-2 * i / d)  # theta_i = base^(-2(i-1)/d), i from 1
        c, s = math.cos(angle), math.sin(angle)
        r[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = torch.tensor(
            [[c, -s], [s, c]], dtype=torch.float64
        )
    return r


def test_rotary_equals_explicit_rotation_matrices():
    rotary = RotaryEmbedding(8)
    x = torch.randn(2, 3, 5, 8, dtype=torch.float64)  # (B, H, L, d)
    positions = torch.tensor([[0, 1, 2, 3, 4], [0, 0, 3, 17, 250]])  # (B, L)
    expected = torch.empty_like(x)
    for b in range(2):
        for t in range(5):
            r = rotation_matrix(int(positions[b, t]), 8)
            expected[b, :, t] = x[b, :, t] @ r.T  # R x for every head
    assert (rotary(x, positions) - expected).abs().max() < 1e-12
    out32 = rotary(x.float(), positions)
    assert out32.dtype == torch.float32 and (out32 - expected).abs().max() < 1e-5
    # the point of RoPE (Eq. 16): q_m . k_n depends on m - n only
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)
    dots = [
        (rotary(q, torch.tensor([[m + 5]])) * rotary(k, torch.tensor([[m]]))).sum()
        for m in (0, 7, 40)
    ]
    assert max(abs(d - dots[0]) for d in dots) < 1e-5


@pytest.mark.parametrize("positions", ["rotary", "learned"])
def test_tiny_lm_overfits_a_few_sequences(positions):
    lm = TransformerLM(V, d_model=32, n_layers=2, n_heads=2, positions=positions)
    data = torch.randint(0, V, (4, 12))
    opt = torch.optim.Adam(lm.parameters(), lr=1e-2)
    for _ in range(150):
        logits, _ = lm(data[:, :-1])  # predict token n from tokens < n
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, V), data[:, 1:].reshape(-1)
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1, loss.item()
