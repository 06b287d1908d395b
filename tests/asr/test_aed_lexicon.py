"""The lexicon-constrained AED beam: WordState.next_allowed against one state per
child, the batched beam against the one-utterance reference, a wide beam against every
sequence of lexicon words scored by brute force, and the fallback."""

import itertools
import random

import pytest
from test_aed_decoding import brute_force, make_batch  # tests/asr is on sys.path

from minispeech.asr.aed_decoding import (
    aed_beam_search,
    aed_beam_search_reference,
)
from minispeech.asr.lexicon import WordState

# ids 0-3 are word pieces, 4 is EOS ("\u2581" starts a word, as SentencePiece writes)
PIECES = ["\u2581a", "b", "\u2581b", "a", "<|endoftext|>"]
EOS = 4
LEXICON = {"ab", "b", "aa"}


def spelled_words(seq):
    """The words of a token sequence (EOS dropped), as the tokenizer would join them."""
    text = "".join(PIECES[t] for t in seq if t != EOS).replace("\u2581", " ")
    return text.split()


def test_next_allowed_equals_one_state_per_child():
    rng = random.Random(0)
    words = WordState(PIECES[:EOS], LEXICON)
    for _ in range(200):
        tokens = tuple(rng.randrange(EOS) for _ in range(rng.randrange(5)))
        mask = words.next_allowed(tokens)
        for v in range(EOS):
            fresh = WordState(PIECES[:EOS], LEXICON)  # no cached children
            assert bool(mask[v]) == fresh.allows(tokens + (v,)), (tokens, v)


def lexicon_words():
    return WordState(PIECES, LEXICON)


@pytest.mark.parametrize("beam_size, alpha", [(1, 0.0), (2, 0.0), (3, 0.5)])
def test_batched_lexicon_beam_equals_reference(beam_size, alpha):
    model, memory, memory_lens, prompt, eos_id = make_batch(5, len(PIECES), 0.0, 1.0)
    assert eos_id == EOS
    hyps, scores = aed_beam_search(
        model, memory, memory_lens, prompt, EOS, 5, beam_size, alpha, True,
        words=lexicon_words(),
    )  # fmt: skip
    for b in range(5):
        ref_hyp, ref_score = aed_beam_search_reference(
            model, memory[b, : memory_lens[b]], prompt[b], EOS, 5, beam_size, alpha,
            words=lexicon_words(),
        )  # fmt: skip
        assert hyps[b] == ref_hyp
        assert scores[b] == pytest.approx(ref_score, abs=1e-5)
        assert set(spelled_words(hyps[b])) <= LEXICON


def lexicon_sequences(max_len):
    """Every output whose words are all lexicon words: l < max_len tokens + EOS, or
    max_len tokens (a first piece without the word-start mark starts a word too)."""
    for n in range(max_len + 1):
        for seq in itertools.product(range(EOS), repeat=n):
            if set(spelled_words(seq)) <= LEXICON:
                yield list(seq) + ([EOS] if n < max_len else [])


@pytest.mark.parametrize("max_len, alpha", [(3, 0.0), (4, 0.0), (4, 0.7)])
def test_wide_lexicon_beam_finds_the_best_lexicon_sequence(max_len, alpha):
    """A beam as wide as the number of sequences returns the best of all outputs
    that spell lexicon words only, with its brute-force score; and the same model
    unconstrained spells something else (the constraint matters here)."""
    model, memory, memory_lens, prompt, _ = make_batch(3, len(PIECES), -4.0, 1.0)
    seqs = list(lexicon_sequences(max_len))
    width = len(PIECES) ** max_len
    hyps, scores = aed_beam_search(
        model, memory, memory_lens, prompt, EOS, max_len, width, alpha, True,
        words=lexicon_words(),
    )  # fmt: skip
    free = aed_beam_search(model, memory, memory_lens, prompt, EOS, max_len, width)
    assert any(not set(spelled_words(h)) <= LEXICON for h in free)
    for b in range(3):
        best, brute = brute_force(model, memory, memory_lens, prompt, seqs, alpha, b)
        assert hyps[b] == [t for t in best if t != EOS]
        assert scores[b] == pytest.approx(brute[best], abs=1e-5)


def test_no_whole_word_in_reach_gives_the_completed_words():
    """Without a whole word in reach of max_len, the best live beam's completed
    words come back, as in the reference: none when "aab" cannot finish in 2
    tokens; lexicon words only when "b" is there too."""
    model, memory, memory_lens, prompt, _ = make_batch(2, len(PIECES), -3.0, 1.0)
    for lexicon, max_len in (({"aab"}, 2), ({"b", "aab"}, 3)):
        words = WordState(PIECES, lexicon)
        hyps = aed_beam_search(
            model, memory, memory_lens, prompt, EOS, max_len, 3, words=words
        )
        for b in range(2):
            ref, _ = aed_beam_search_reference(
                model, memory[b, : memory_lens[b]], prompt[b], EOS, max_len, 3,
                words=words,
            )  # fmt: skip
            assert hyps[b] == ref
            assert set(spelled_words(hyps[b])) <= lexicon
        if lexicon == {"aab"}:
            assert hyps == [[], []]
