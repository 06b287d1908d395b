"""Attention rescoring of an AED model with a CTC head: the decoder's scores of the
CTC beam's candidates against step-by-step decoding, the choice against a slow
reference at several weights, batched against one by one, and its config errors.

A tiny random model (16 mels, one Conformer layer of width 16, a one-layer decoder of
width 24, a CTC head) on a tokenizer trained from a few sentences.
"""

import argparse

import pytest
import torch
from tiny_model import tiny_aed_config

from minispeech.asr.aed_model import AEDModel
from minispeech.asr.aed_rescoring import (
    attention_log_likelihoods,
    rescore,
    rescores,
    text_and_blank,
)
from minispeech.asr.aed_tokenizer import build_aggregate_tokenizer
from minispeech.asr.commands import decoding_overrides
from minispeech.asr.ctc_decoding import ctc_prefix_beam_search_single
from minispeech.core.config import ConfigError

SENTENCES = ["call bob at nine", "turn the red light on", "bob is in the garden"] * 20


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("agg_rescoring")
    build_aggregate_tokenizer(SENTENCES, folder, 40)
    return folder


def config(tok_dir, **decoding) -> dict:
    """The tiny AED model with a CTC head, decoding by attention rescoring."""
    return tiny_aed_config(
        tok_dir,
        loss={"ctc_weight": 0.3},
        decoding={"strategy": "attention_rescoring", "beam_size": 6, **decoding},
    )


@pytest.fixture
def model(tok_dir):
    return AEDModel(config(tok_dir)).eval()


def nopnc(model) -> list[int]:
    return model.tokenizer.prompt_ids(**{**model.prompt_cfg, "pnc": False})


def step_by_step(model, memory, memory_len, prompt, seq) -> float:
    """s_att by feeding one token at a time through the key/value cache (float64)."""
    log_probs, cache = model.decode_step(
        torch.tensor([prompt]), memory, memory_len, None
    )
    total = 0.0
    for token in [*seq, model.tokenizer.eos_id]:
        total += float(log_probs[0, -1, token].double())
        log_probs, cache = model.decode_step(
            torch.tensor([[token]]), memory, memory_len, cache
        )
    return total


def encoded(model, seconds=(0.6,)):
    audio = [torch.randn(int(16000 * s)) * 0.1 for s in seconds]
    lens = torch.tensor([a.numel() for a in audio])
    padded = torch.zeros(len(audio), int(lens.max()))
    for b, a in enumerate(audio):
        padded[b, : a.numel()] = a
    return padded, lens


@torch.no_grad()
def test_decoder_scores_equal_step_by_step_decoding(model):
    memory, lens, _ = model.encode_with_ctc(*encoded(model))
    text_ids = model.tokenizer.encode("call bob at nine")
    candidates = [text_ids, text_ids[:2], [], text_ids[::-1] + text_ids]
    prompt = nopnc(model)
    batched = attention_log_likelihoods(model, memory, lens, prompt, candidates)
    for score, seq in zip(batched.tolist(), candidates):
        assert abs(score - step_by_step(model, memory, lens, prompt, seq)) < 1e-4


@torch.no_grad()
@pytest.mark.parametrize("weight", [0.0, 0.5, 2.0, 1e6])
def test_the_choice_maximizes_the_weighted_sum(model, weight):
    memory, lens, ctc = model.encode_with_ctc(*encoded(model, (0.9,)))
    frames = text_and_blank(model, ctc)[0, : int(lens[0])]  # (T', V+1)
    texts, prompt = model.token_texts(), nopnc(model)
    beam = ctc_prefix_beam_search_single(frames, blank=model.blank, beam_width=6)
    assert len(beam) > 1  # a real choice, among text pieces only
    assert all(
        model.tokenizer.lang_of(i) != "spl_tokens" for h in beam for i in h.tokens
    )
    # the reference: each candidate scored alone, the best weighted sum wins
    totals = [
        weight * hyp.score + step_by_step(model, memory, lens, prompt, hyp.tokens)
        for hyp in beam
    ]
    expected = list(beam[max(range(len(beam)), key=totals.__getitem__)].tokens)
    chosen = rescore(model, memory, lens, frames, prompt, 6, weight, texts)
    assert chosen == expected
    if weight == 1e6:  # the CTC beam's own best
        assert chosen == list(beam[0].tokens)


@torch.no_grad()
def test_batched_decoding_equals_one_by_one(model):
    audio, lens = encoded(model, (0.5, 0.9, 0.7))
    batched = model.decode_ids(audio, lens, nopnc(model), 6)
    alone = [
        model.decode_ids(
            audio[b : b + 1, : int(lens[b])], lens[b : b + 1], nopnc(model), 6
        )[0]
        for b in range(3)
    ]
    assert batched == alone
    texts = model.decode(audio, lens)
    assert texts == [model.tokenizer.ids_to_text(seq) for seq in batched]


def test_written_form_prompt_keeps_the_attention_beam(model):
    pnc = model.tokenizer.prompt_ids(**{**model.prompt_cfg, "pnc": True})
    assert rescores(model, nopnc(model)) and not rescores(model, pnc)


def test_lexicon_limits_the_candidates(model, tmp_path):
    lexicon = tmp_path / "words.txt"
    lexicon.write_text("call\nbob\nnine\n")
    model = AEDModel(config(model.cfg["tokenizer"]["dir"], lexicon=str(lexicon)))
    audio, lens = encoded(model, (0.8, 0.6))
    texts = model.eval().decode(audio, lens)
    assert any(texts), texts  # words were spelled, and only these
    for text in texts:
        assert set(text.split()) <= {"call", "bob", "nine"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"loss": {"ctc_weight": 0.0}}, "needs the CTC head"),
        ({"decoding": {"strategy": "beam", "lm_path": "lm.arpa"}}, "no LM fusion"),
        (
            {
                "decoding": {
                    "strategy": "attention_rescoring",
                    "rescoring_ctc_weight": -1,
                }
            },
            "rescoring_ctc_weight",
        ),
        ({"decoding": {"strategy": "rescore"}}, "attention_rescoring"),
    ],
)
def test_config_errors_name_the_key(tok_dir, changes, message):
    with pytest.raises(ConfigError, match=message):
        AEDModel({**config(tok_dir), **changes})


def test_rescore_flag_is_the_strategy_override():
    args = argparse.Namespace(
        beam=16, lm=None, lm_alpha=0.3, lm_beta=None, lexicon=None, rescore=True
    )
    overrides = decoding_overrides(args)
    assert "decoding.strategy=attention_rescoring" in overrides
    assert "decoding.strategy=beam" not in overrides
    assert "decoding.beam_size=16" in overrides and "decoding.lm_alpha=0.3" in overrides
