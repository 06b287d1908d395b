"""AED decoding: the cache against recomputation, beam K=1 equals greedy, batched beam
equals the one-utterance reference, and beam search against brute force over every
sequence of a tiny vocabulary."""

import itertools

import pytest
import torch

from minispeech.asr.aed_decoding import (
    aed_beam_search,
    aed_beam_search_reference,
    aed_greedy_decode,
    gnmt_length_penalty,
    select_cache,
)
from minispeech.nn.transformer import TransformerDecoder

D = 16  # d_model of the toy decoder


class ToyAED(torch.nn.Module):
    """decode_step of an AED model: a random TransformerDecoder + log_softmax."""

    def __init__(self, vocab_size, eos_id, eos_bias, sharpness=4.0):
        super().__init__()
        self.decoder = TransformerDecoder(vocab_size, D, n_layers=2, n_heads=2)
        with torch.no_grad():
            self.decoder.output.weight.mul_(sharpness)  # peaked, like a trained model
            self.decoder.output.bias[eos_id] += eos_bias  # EOS reachable early

    def decode_step(self, tokens, memory, memory_lens, cache):
        # (B, L_new, V); TransformerDecoder reads enc as (B, D, T')
        logits, cache = self.decoder(tokens, memory.transpose(1, 2), memory_lens, cache)
        return logits.log_softmax(-1), cache


def make_batch(n_batch=4, vocab_size=7, eos_bias=1.0, sharpness=4.0, prompt_len=2):
    """A toy model, memory (B, T', D) with garbage in the padded frames, a prompt."""
    eos_id = vocab_size - 1
    model = ToyAED(vocab_size, eos_id, eos_bias, sharpness).eval()
    memory_lens = torch.randint(2, 9, (n_batch,))
    memory_lens[0] = 8
    memory = torch.randn(n_batch, 8, D)  # (B, T', D)
    memory[torch.arange(8) >= memory_lens.unsqueeze(1)] = 100.0  # padding
    prompt = torch.randint(0, eos_id, (n_batch, prompt_len))  # (B, P)
    return model, memory, memory_lens, prompt, eos_id


def test_cache_equals_recomputing_the_prefix():
    model, memory, memory_lens, prompt, _ = make_batch()
    tokens = torch.cat([prompt, torch.randint(0, 7, (4, 5))], dim=1)  # (B, P+5)
    full, _ = model.decode_step(tokens, memory, memory_lens, None)  # (B, P+5, V)
    steps, cache = model.decode_step(prompt, memory, memory_lens, None)
    pieces = [steps]
    for i in range(prompt.size(1), tokens.size(1)):
        step, cache = model.decode_step(
            tokens[:, i : i + 1], memory, memory_lens, cache
        )
        pieces.append(step)
    torch.testing.assert_close(torch.cat(pieces, dim=1), full)


def test_select_cache_reorders_rows():
    model, memory, memory_lens, prompt, _ = make_batch()
    index = torch.tensor([2, 0, 0, 3, 1])  # (B',) reorder and repeat
    _, cache = model.decode_step(prompt, memory, memory_lens, None)
    cache = select_cache(cache, index)
    assert cache.length == prompt.size(1)
    next_ids = torch.randint(0, 7, (5, 1))
    step, _ = model.decode_step(next_ids, memory[index], memory_lens[index], cache)
    tokens = torch.cat([prompt[index], next_ids], dim=1)  # (B', P+1)
    full, _ = model.decode_step(tokens, memory[index], memory_lens[index], None)
    torch.testing.assert_close(step[:, -1], full[:, -1])


@torch.no_grad()
def prefix_log_probs(model, memory, prompt, seq):
    """One item, no cache: memory (T', D), prompt (P,), seq -> (P + L, V) float64."""
    tokens = torch.cat([prompt, torch.tensor(seq, dtype=torch.long)])  # (P + L,)
    lens = torch.tensor([len(memory)])
    log_probs, _ = model.decode_step(tokens[None], memory[None], lens, None)
    return log_probs[0].double()


def greedy_single(model, memory, prompt, eos_id, max_len):
    """Greedy by hand for one item, recomputing the whole prefix each step."""
    out = []
    for _ in range(max_len):
        out.append(int(prefix_log_probs(model, memory, prompt, out)[-1].argmax()))
        if out[-1] == eos_id:
            return out[:-1]
    return out


@pytest.mark.parametrize("eos_bias", [0.0, 2.0])
def test_greedy_matches_one_by_one_and_respects_max_len(eos_bias):
    model, memory, memory_lens, prompt, eos_id = make_batch(6, eos_bias=eos_bias)
    hyps = aed_greedy_decode(model, memory, memory_lens, prompt, eos_id, max_len=6)
    for b, hyp in enumerate(hyps):
        single = greedy_single(model, memory[b, : memory_lens[b]], prompt[b], eos_id, 6)
        assert hyp == single
        assert len(hyp) <= 6 and eos_id not in hyp
    assert aed_greedy_decode(model, memory, memory_lens, prompt, eos_id, 0) == [[]] * 6


@pytest.mark.parametrize("eos_bias", [0.0, 1.5, 3.0])
def test_beam_size_one_is_greedy(eos_bias):
    model, memory, memory_lens, prompt, eos_id = make_batch(6, eos_bias=eos_bias)
    args = (model, memory, memory_lens, prompt, eos_id, 7)
    assert aed_beam_search(*args, beam_size=1) == aed_greedy_decode(*args)


@pytest.mark.parametrize("beam_size, alpha", [(1, 0.0), (3, 0.0), (4, 1.0), (5, 0.6)])
def test_batched_beam_equals_reference(beam_size, alpha):
    model, memory, memory_lens, prompt, eos_id = make_batch(5, eos_bias=1.0)
    hyps, scores = aed_beam_search(
        model, memory, memory_lens, prompt, eos_id, 6, beam_size, alpha, True
    )
    for b in range(5):
        one = (memory[b : b + 1], memory_lens[b : b + 1], prompt[b : b + 1], eos_id, 6)
        alone = aed_beam_search(model, *one, beam_size, alpha, return_scores=True)
        ref_hyp, ref_score = aed_beam_search_reference(
            model, memory[b, : memory_lens[b]], prompt[b], eos_id, 6, beam_size, alpha
        )
        assert hyps[b] == alone[0][0] == ref_hyp
        assert scores[b] == pytest.approx(ref_score, abs=1e-5)
        assert scores[b] == pytest.approx(alone[1][0], abs=1e-5)
        assert len(hyps[b]) <= 6 and eos_id not in hyps[b]


def all_sequences(vocab_size, eos_id, max_len):
    """Every output: l < max_len non-EOS tokens + EOS, or max_len non-EOS tokens."""
    labels = [v for v in range(vocab_size) if v != eos_id]
    for n in range(max_len + 1):
        for seq in itertools.product(labels, repeat=n):
            yield list(seq) + ([eos_id] if n < max_len else [])


def normalised_score(model, memory, prompt, seq, alpha):
    """s(Y, X) = sum of the log-probs of seq (EOS included) / lp(|Y|)."""
    log_probs = prefix_log_probs(model, memory, prompt, seq)
    picked = log_probs[len(prompt) - 1 : -1]  # (|Y|, V): the ones predicting seq
    raw = picked.gather(1, torch.tensor(seq)[:, None]).sum()
    return float(raw) / gnmt_length_penalty(len(seq), alpha)


def brute_force(model, memory, memory_lens, prompt, seqs, alpha, b):
    """Item b's best of `seqs` by s(Y, X), and every sequence's score."""
    mem = memory[b, : memory_lens[b]]
    scores = {tuple(s): normalised_score(model, mem, prompt[b], s, alpha) for s in seqs}
    return max(scores, key=scores.get), scores


@pytest.mark.parametrize("max_len, alpha", [(3, 0.0), (3, 1.0), (4, 0.0), (4, 0.5)])
def test_beam_search_against_brute_force(max_len, alpha):
    vocab_size = 4
    # flatter outputs than elsewhere: greedy misses the best, and beam 4 once (4, 0.5)
    model, memory, memory_lens, prompt, eos_id = make_batch(3, vocab_size, -1.0, 1.0)
    seqs = list(all_sequences(vocab_size, eos_id, max_len))  # 40 or 121 of them
    hyps, scores = aed_beam_search(
        model, memory, memory_lens, prompt, eos_id, max_len, len(seqs), alpha, True
    )
    narrow, narrow_scores = aed_beam_search(
        model, memory, memory_lens, prompt, eos_id, max_len, 4, alpha, True
    )
    greedy = aed_greedy_decode(model, memory, memory_lens, prompt, eos_id, max_len)
    assert greedy != hyps  # a case where search matters
    for b in range(3):
        best, brute = brute_force(model, memory, memory_lens, prompt, seqs, alpha, b)
        assert hyps[b] == [t for t in best if t != eos_id]
        assert scores[b] == pytest.approx(brute[best], abs=1e-5)
        # beam 4 is not always better than greedy (beam search is not monotone in
        # its width); it is on these seeded cases, as it usually is
        greedy_seq = greedy[b] + ([eos_id] if len(greedy[b]) < max_len else [])
        assert narrow_scores[b] >= brute[tuple(greedy_seq)] - 1e-6
        narrow_seq = narrow[b] + ([eos_id] if len(narrow[b]) < max_len else [])
        assert narrow_scores[b] == pytest.approx(brute[tuple(narrow_seq)], abs=1e-5)


def beam_without_stopping(model, memory, prompt, eos_id, max_len, k, alpha):
    """The same beam, run to max_len, keeping every finished hypothesis."""
    live, finished = [(0.0, [])], []
    for step in range(1, max_len + 1):
        cands = []
        for score, seq in live:
            next_lp = prefix_log_probs(model, memory, prompt, seq)[-1].tolist()
            cands += [(score + x, seq + [v]) for v, x in enumerate(next_lp)]
        cands.sort(key=lambda cand: -cand[0])
        lp = gnmt_length_penalty(step, alpha)
        finished += [(s / lp, t[:-1]) for s, t in cands[:k] if t[-1] == eos_id]
        live = [cand for cand in cands if cand[1][-1] != eos_id][:k]
    lp = gnmt_length_penalty(max_len, alpha)
    finished += [(s / lp, t) for s, t in live]
    return max(finished, key=lambda f: f[0])


class CountingAED(ToyAED):
    n_calls = 0

    def decode_step(self, tokens, memory, memory_lens, cache):
        self.n_calls += 1
        return super().decode_step(tokens, memory, memory_lens, cache)


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_stopping_early_changes_nothing(alpha):
    """The stopping rule ends the search early with the answer of running to the end."""
    _, memory, memory_lens, prompt, eos_id = make_batch(3, eos_bias=2.0)
    model = CountingAED(7, eos_id, eos_bias=2.0).eval()
    max_len = 12
    hyps, scores = aed_beam_search(
        model, memory, memory_lens, prompt, eos_id, max_len, 3, alpha, True
    )
    assert model.n_calls < max_len  # it stopped early (1 call per step)
    for b in range(3):
        mem = memory[b, : memory_lens[b]]
        score, seq = beam_without_stopping(
            model, mem, prompt[b], eos_id, max_len, 3, alpha
        )
        assert hyps[b] == seq and scores[b] == pytest.approx(score, abs=1e-5)


def test_max_len_zero_and_prompt_excluded():
    model, memory, memory_lens, prompt, eos_id = make_batch(3, eos_bias=-5.0)
    hyps, scores = aed_beam_search(
        model, memory, memory_lens, prompt, eos_id, 0, return_scores=True
    )
    assert hyps == [[]] * 3 and scores == [0.0] * 3
    hyps = aed_beam_search(model, memory, memory_lens, prompt, eos_id, 5)
    greedy = aed_greedy_decode(model, memory, memory_lens, prompt, eos_id, 5)
    for hyp in hyps + greedy:  # EOS made unlikely: max_len ends them, P not counted
        assert len(hyp) == 5 and eos_id not in hyp
