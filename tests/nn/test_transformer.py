"""Transformer encoder/decoder: cached decoding equals recomputation; causality."""

import torch

from minispeech.nn.transformer import TransformerDecoder, TransformerEncoder


def small_decoder(**kwargs):
    return TransformerDecoder(
        vocab_size=11, d_model=16, n_layers=2, n_heads=4, **kwargs
    )


def memory(b=2, t=9):
    enc = torch.randn(b, 16, t)  # (B, D, T')
    enc_lens = torch.tensor([t, t - 4])[:b]
    return enc, enc_lens


def test_cached_steps_equal_full_recomputation():
    for impl_sdpa in (False, True):
        dec = small_decoder(use_pytorch_sdpa=impl_sdpa).eval()
        enc, enc_lens = memory()
        tokens = torch.randint(0, 11, (2, 7))
        full, _ = dec(tokens, enc, enc_lens)
        # one token at a time, then a chunk of three: the cache carries the prefix
        steps, cache = [], None
        for u in range(4):
            logits, cache = dec(tokens[:, u : u + 1], enc, enc_lens, cache)
            steps.append(logits)
        logits, cache = dec(tokens[:, 4:], enc, enc_lens, cache)
        steps.append(logits)
        assert cache.length == 7
        assert (torch.cat(steps, dim=1) - full).abs().max() < 1e-5


def test_decoder_is_causal_and_ignores_padded_memory():
    dec = small_decoder().eval()
    enc, enc_lens = memory()
    tokens = torch.randint(0, 11, (2, 6))
    base, _ = dec(tokens, enc, enc_lens)
    changed = tokens.clone()
    changed[:, 4] = (changed[:, 4] + 1) % 11
    out, _ = dec(changed, enc, enc_lens)
    assert torch.equal(out[:, :4], base[:, :4])  # earlier positions never look ahead
    assert (out[:, 4:] - base[:, 4:]).abs().max() > 1e-4
    enc2 = enc.clone()
    enc2[1, :, enc_lens[1] :] = 100.0  # padding of item 1
    out, _ = dec(tokens, enc2, enc_lens)
    assert (out - base).abs().max() < 1e-5


def test_encoder_padding_invariance_and_shapes():
    enc = TransformerEncoder(feat_in=12, n_layers=2, d_model=16, n_heads=2).eval()
    feats = torch.randn(2, 12, 40)
    lens = torch.tensor([40, 26])
    feats[1, :, 26:] = 30.0
    with torch.no_grad():
        out, out_lens = enc(feats, lens)
        alone, alone_lens = enc(feats[1:, :, :26], lens[1:])
    assert out.shape == (2, 16, 10) and out_lens.tolist() == [10, 7]
    assert alone_lens.tolist() == [7]
    assert (out[1, :, :7] - alone[0]).abs().max() < 1e-5
