"""CTC greedy and prefix beam search decoding, with brute-force references."""

import itertools
import math

import pytest
import torch

from minispeech.asr.ctc_decoding import (
    ctc_greedy_decode,
    ctc_greedy_decode_single,
    ctc_prefix_beam_search,
    ctc_prefix_beam_search_single,
)
from minispeech.asr.ngram_lm import NGramLM


def _table(rows, n_vocab):
    """Log-probs (T,V) peaked on rows[t] at each frame, as a trained model's are."""
    logits = torch.zeros(len(rows), n_vocab)
    logits[range(len(rows)), rows] = 8.0
    return logits.log_softmax(-1)


def test_greedy_hand_worked():
    # frames: _ 1 1 _ 2 2 3 (blank 0) -> 1 2 3; a blank between repeats keeps both
    assert ctc_greedy_decode(_table([0, 1, 1, 0, 2, 2, 3], 5)[None]) == [[1, 2, 3]]
    assert ctc_greedy_decode_single(_table([1, 1, 0, 1, 4, 4], 5)) == [1, 1, 4]
    # blank last, as NeMo: 4 is blank
    blank_last = _table([4, 0, 0, 4, 0, 3], 5)[None]
    assert ctc_greedy_decode(blank_last, blank=4) == [[0, 0, 3]]


def test_greedy_batched_equals_one_at_a_time():
    log_probs = torch.randn(6, 30, 7).log_softmax(-1)  # (B,T,V)
    lens = torch.tensor([30, 1, 17, 29, 5, 30])
    for blank in (0, 6):
        batched = ctc_greedy_decode(log_probs, lens, blank=blank)
        single = [
            ctc_greedy_decode_single(log_probs[b, :n], blank)
            for b, n in enumerate(lens.tolist())
        ]
        assert batched == single
        assert any(len(tokens) > 3 for tokens in batched)


def test_beam_of_one_equals_greedy_on_peaky_inputs():
    for _ in range(5):
        rows = torch.randint(0, 5, (25,)).tolist()
        log_probs = _table(rows, 5) + 0.1 * torch.randn(25, 5)  # (T,V)
        greedy = ctc_greedy_decode_single(log_probs)
        assert ctc_prefix_beam_search(log_probs, beam_width=1) == [greedy]


def _brute_force_labelings(log_probs, blank):
    """ln p(l|x) of every labeling l: the sum over all V^T paths that collapse to l."""
    n_frames, n_vocab = log_probs.shape
    terms = {}
    for path in itertools.product(range(n_vocab), repeat=n_frames):
        label = tuple(
            k for i, k in enumerate(path) if k != blank and (i == 0 or k != path[i - 1])
        )
        terms.setdefault(label, []).append(log_probs[range(n_frames), list(path)].sum())
    return {lab: torch.logsumexp(torch.stack(t), 0).item() for lab, t in terms.items()}


@pytest.mark.parametrize("blank", [0, 2])
def test_exhaustive_beam_matches_brute_force(blank):
    """T=5, V=3: 63 prefixes at most, so a beam of 64 keeps them all: the best
    hypothesis is the most probable labeling (not the most probable path)."""
    for _ in range(3):
        log_probs = (0.8 * torch.randn(5, 3, dtype=torch.float64)).log_softmax(-1)
        brute = _brute_force_labelings(log_probs, blank)
        hyps = ctc_prefix_beam_search_single(
            log_probs, blank=blank, beam_width=64, token_min_logp=-math.inf
        )
        assert hyps[0].tokens == max(brute, key=brute.get)
        assert len(hyps) == len(brute)
        for hyp in hyps:
            assert hyp.acoustic == pytest.approx(brute[hyp.tokens], abs=1e-9)


def test_beam_batched_equals_one_at_a_time():
    log_probs = (2 * torch.randn(4, 20, 6)).log_softmax(-1)
    lens = torch.tensor([20, 7, 13, 1])
    batched = ctc_prefix_beam_search(log_probs, lens, blank=5, beam_width=4)
    for b, n in enumerate(lens.tolist()):
        single = ctc_prefix_beam_search_single(log_probs[b, :n], blank=5, beam_width=4)
        assert batched[b] == list(single[0].tokens)


# characters: 0 blank, 1 space, then letters
CHARS = ["", " ", "c", "a", "t", "b", "s"]


def _spell(frames):
    """Per-frame (label -> probability) dicts; the rest of each frame goes to blank."""
    probs = torch.full((len(frames), len(CHARS)), 1e-4)
    for t, frame in enumerate(frames):
        for label, p in frame.items():
            probs[t, CHARS.index(label)] = p
        probs[t, 0] = 1 - probs[t, 1:].sum()
    return probs.log()


def test_shallow_fusion_picks_the_word_the_lm_knows():
    lm = NGramLM.train(["a cat sat", "the cat", "cat sat"], order=2)
    # "cab" is acoustically a little better than "cat"
    log_probs = _spell([{"c": 0.9}, {"a": 0.9}, {"t": 0.4, "b": 0.5}])
    assert [CHARS[k] for k in ctc_greedy_decode_single(log_probs)] == list("cab")
    plain = ctc_prefix_beam_search_single(log_probs, beam_width=8)
    assert plain[0].tokens == (2, 3, 5)
    fused = ctc_prefix_beam_search_single(
        log_probs, beam_width=8, lm=lm, alpha=1.0, beta=0.5, token_to_text=CHARS
    )
    best = fused[0]
    assert best.tokens == (2, 3, 4)  # c a t
    assert best.lm == pytest.approx(lm.sentence_score("cat"))
    assert best.n_words == 1
    assert best.score == pytest.approx(best.acoustic + 1.0 * best.lm + 0.5)


def test_lm_is_applied_at_word_boundaries():
    lm = NGramLM.train(["cat sat", "cat cat sat"], order=3)
    # c a t _ s a t, spelled with certainty
    frames = [{c: 0.99} for c in "cat sat"]
    hyps = ctc_prefix_beam_search_single(
        _spell(frames), beam_width=4, lm=lm, alpha=0.7, token_to_text=CHARS
    )
    assert "".join(CHARS[k] for k in hyps[0].tokens) == "cat sat"
    assert hyps[0].n_words == 2
    assert hyps[0].lm == pytest.approx(lm.sentence_score("cat sat"))


def test_sentencepiece_pieces_start_words():
    lm = NGramLM.train(["the cat", "the cat sat"], order=2)
    pieces = ["<blank>", "\u2581the", "\u2581ca", "t", "\u2581sat"]
    log_probs = _table([1, 0, 2, 3, 0, 4], 5)  # ▁the ▁ca t ▁sat
    hyps = ctc_prefix_beam_search_single(
        log_probs, beam_width=4, lm=lm, token_to_text=pieces
    )
    assert hyps[0].tokens == (1, 2, 3, 4)
    assert hyps[0].n_words == 3
    assert hyps[0].lm == pytest.approx(lm.sentence_score("the cat sat"))


def _words_allowed(labeling, chars, lexicon):
    return all(w in lexicon for w in "".join(chars[k] for k in labeling).split())


@pytest.mark.parametrize("alpha,beta", [(0.0, 0.0), (0.8, 0.5)])
def test_exhaustive_lexicon_beam_matches_brute_force(alpha, beta):
    """T=5, labels blank, space, a, b: the best of all labelings whose words are all in
    the lexicon, ranked by acoustic + alpha ln p_LM + beta |W|, found by scoring every
    labeling (a beam of 400 keeps every prefix the lexicon allows)."""
    chars = ["", " ", "a", "b"]
    lexicon = {"a", "ab", "ba"}
    lm = NGramLM.train(["a ab", "ba a", "ab ab ba"], order=2)
    for _ in range(3):
        log_probs = (0.8 * torch.randn(5, 4, dtype=torch.float64)).log_softmax(-1)
        brute = _brute_force_labelings(log_probs, blank=0)
        allowed = {lab for lab in brute if _words_allowed(lab, chars, lexicon)}
        assert 1 < len(allowed) < len(brute)

        def total(lab, brute=brute):
            words = "".join(chars[k] for k in lab).split()
            lm_logp = lm.sentence_score(" ".join(words)) if alpha else 0.0
            return brute[lab] + alpha * lm_logp + beta * len(words)

        hyps = ctc_prefix_beam_search_single(
            log_probs,
            beam_width=400,
            token_min_logp=-math.inf,
            lexicon=lexicon,
            lm=lm if alpha else None,
            alpha=alpha,
            beta=beta,
            token_to_text=chars,
        )
        finished = {h.tokens: h for h in hyps if h.score > -math.inf}
        assert set(finished) == allowed
        assert hyps[0].tokens == max(allowed, key=total)
        for lab in allowed:
            assert finished[lab].score == pytest.approx(total(lab), abs=1e-9)


def test_lexicon_turns_a_misspelling_into_the_known_word():
    # "cab" is acoustically a little better than "cat", but only "cat" is a word
    log_probs = _spell([{"c": 0.9}, {"a": 0.9}, {"t": 0.4, "b": 0.5}])
    hyps = ctc_prefix_beam_search_single(
        log_probs, beam_width=8, token_to_text=CHARS, lexicon={"cat", "sat"}
    )
    assert hyps[0].tokens == (2, 3, 4)
    assert hyps[0].score == pytest.approx(hyps[0].acoustic + 1.0)  # beta, one word
    batched = ctc_prefix_beam_search(
        log_probs, beam_width=8, token_to_text=CHARS, lexicon=["cat", "sat"]
    )
    assert batched == [[2, 3, 4]]


def test_lexicon_search_that_cannot_finish_a_word_keeps_the_finished_ones():
    # a beam of one ends inside "cats" ("sat ca"): the answer keeps "sat" only
    frames = [{c: 0.99} for c in "sat ca"]
    hyps = ctc_prefix_beam_search_single(
        _spell(frames), beam_width=1, token_to_text=CHARS, lexicon={"cats", "sat"}
    )
    assert all(h.score == -math.inf for h in hyps)
    best = ctc_prefix_beam_search(
        _spell(frames), beam_width=1, token_to_text=CHARS, lexicon={"cats", "sat"}
    )
    assert "".join(CHARS[k] for k in best[0]) == "sat"
    pieces = ["<blank>", "\u2581sa", "t", "\u2581ca"]  # ▁sa t ▁ca: "ca" unfinished
    best = ctc_prefix_beam_search(
        _table([1, 0, 2, 0, 3], 4),
        beam_width=4,
        token_to_text=pieces,
        lexicon={"sat", "cats"},
    )
    assert best == [[1, 2]]


def test_bad_arguments():
    log_probs = torch.randn(4, 3).log_softmax(-1)
    with pytest.raises(ValueError, match="token_to_text"):
        ctc_prefix_beam_search_single(log_probs, lm=NGramLM.train(["a"]))
    with pytest.raises(ValueError, match="token_to_text"):
        ctc_prefix_beam_search_single(log_probs, lexicon={"a"})
    with pytest.raises(ValueError, match=r"\(B,T,V\)"):
        ctc_greedy_decode(log_probs)
    with pytest.raises(ValueError, match="beam_width"):
        ctc_prefix_beam_search_single(log_probs, beam_width=0)
