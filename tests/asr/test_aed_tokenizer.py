"""The aggregate tokenizer of the AED model: special-token ids, offsets, prompts, files.

NeMo's own files (canary_aed_tiny.nemo) are checked in tests/nemo/test_nemo_aed.py;
here the tokenizer is built from a few sentences with `build_aggregate_tokenizer`.
"""

import pytest

from minispeech.asr.aed_tokenizer import (
    SPECIAL_TOKENS,
    AggregateTokenizer,
    build_aggregate_tokenizer,
)

TEXTS = ["turn on the light", "call bob at nine", "the red car is in the garden"] * 20
GERMAN = ["das licht an", "ruf bob um neun an", "das rote auto"] * 20


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return build_aggregate_tokenizer(TEXTS, tmp_path_factory.mktemp("agg"), 40)


def test_special_tokens_come_first_in_nemo_order(tokenizer):
    expected = ["<unk>", *SPECIAL_TOKENS, "<|en|>", "▁"]  # NeMo's canary layout
    assert tokenizer.tokens[: len(expected)] == expected
    assert tokenizer.offsets == {"spl_tokens": 0, "en": len(expected)}
    assert tokenizer.vocab_size == len(expected) + 40
    ids = (tokenizer.pad_id, tokenizer.eos_id, tokenizer.bos_id)
    assert ids == (2, 3, 4)  # as in NeMo: <pad>=2, <|endoftext|>=3, BOS=4


def test_prompt_ids_follow_the_canary_format(tokenizer):
    ids = tokenizer.token_to_id
    base = [ids("<|startoftranscript|>"), ids("<|en|>"), ids("<|transcribe|>")]
    assert tokenizer.prompt_ids() == base + [ids("<|en|>"), ids("<|nopnc|>")]
    for pnc in (True, "yes", "pnc"):
        assert tokenizer.prompt_ids(pnc=pnc)[-1] == ids("<|pnc|>")
    for task in ("translate", "ast", "s2t_translation"):
        assert tokenizer.prompt_ids(task=task)[2] == ids("<|translate|>")


def test_an_unknown_prompt_token_is_named(tokenizer):
    with pytest.raises(ValueError, match=r"'<\|de\|>' is not a special token"):
        tokenizer.prompt_ids(target_lang="de")
    with pytest.raises(ValueError, match="task 'summarize'"):
        tokenizer.prompt_ids(task="summarize")
    with pytest.raises(ValueError, match="pnc 'maybe'"):
        tokenizer.prompt_ids(pnc="maybe")


def test_text_ids_are_offset_and_decode_back(tokenizer):
    offset = tokenizer.offsets["en"]
    text = "call the red car"
    ids = tokenizer.text_to_ids(text, "en")
    assert min(ids) >= offset
    assert [i - offset for i in ids] == tokenizer.texts["en"].encode(text)
    assert tokenizer.encode(text) == ids  # the dataset's interface: first language
    # special tokens (prompt, EOS) are dropped when decoding
    with_prompt = tokenizer.prompt_ids() + ids + [tokenizer.eos_id]
    assert tokenizer.ids_to_text(with_prompt) == text == tokenizer.decode(ids)
    # a lone word-start piece between words leaves one space, not two
    lone = tokenizer.offsets["en"] + tokenizer.texts["en"].tokens.index("\u2581")
    call, rest = tokenizer.text_to_ids("call", "en"), tokenizer.text_to_ids("the", "en")
    assert tokenizer.ids_to_text(call + [lone] + rest) == "call the"


def test_bad_text_and_ids_raise(tokenizer):
    with pytest.raises(ValueError, match="never seen"):
        tokenizer.text_to_ids("zürich", "en")
    with pytest.raises(ValueError, match="language 'fr'"):
        tokenizer.text_to_ids("bonjour", "fr")
    with pytest.raises(ValueError, match="outside"):
        tokenizer.ids_to_text([tokenizer.vocab_size])


def test_building_is_deterministic_and_files_roundtrip(tokenizer, tmp_path):
    again = build_aggregate_tokenizer(TEXTS, tmp_path / "again", 40)
    assert again.special_proto == tokenizer.special_proto
    assert again.texts["en"].model_proto == tokenizer.texts["en"].model_proto
    loaded = AggregateTokenizer.load(tmp_path / "again")
    assert loaded.tokens == tokenizer.tokens
    names = sorted(p.name for p in (tmp_path / "again").iterdir())
    assert names == [
        "en.model",
        "en.vocab.txt",
        "spl_tokens.model",
        "spl_tokens.vocab.txt",
    ]
    with pytest.raises(FileNotFoundError, match="de.model"):
        AggregateTokenizer.load(tmp_path / "again", langs=("en", "de"))


def test_two_languages_get_consecutive_offsets(tmp_path):
    texts = {"en": TEXTS, "de": GERMAN}
    tok = build_aggregate_tokenizer(texts, tmp_path, 30, langs=("en", "de"))
    n_special = len(SPECIAL_TOKENS) + 2 + 2  # <unk>, specials, <|en|> <|de|>, "▁"
    assert tok.offsets == {"spl_tokens": 0, "en": n_special, "de": n_special + 30}
    assert tok.prompt_ids(source_lang="de", task="translate", target_lang="en")[1] == (
        tok.token_to_id("<|de|>")
    )
    ids = tok.text_to_ids("das auto", "de") + tok.text_to_ids("the car", "en")
    assert min(tok.text_to_ids("das auto", "de")) >= n_special + 30
    assert tok.ids_to_text(ids) == "das auto the car"
