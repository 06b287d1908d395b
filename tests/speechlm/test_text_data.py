"""Synthetic text chats for the LM's first stage: reproducible, answered by the QA
rules, never a held-out sentence, tokenized like the manifest's text-only items."""

import json

import pytest

from minispeech.speechlm.dataset import transcripts
from minispeech.speechlm.qa import N_TRAIN_PHRASINGS, PHRASINGS, answer
from minispeech.speechlm.text_data import SyntheticChats, synthetic_chat
from minispeech.speechlm.tokenizer import ChatTokenizer


def test_chats_are_reproducible_and_answered_by_the_qa_rules():
    chats = [synthetic_chat(3, k) for k in range(200)]
    assert chats == [synthetic_chat(3, k) for k in range(200)]
    assert chats != [synthetic_chat(4, k) for k in range(200)]
    for chat in chats:
        kind = chat["question_type"]
        assert chat["prompt"] in PHRASINGS[kind][:N_TRAIN_PHRASINGS]
        if kind != "gender":
            assert chat["answer"] == answer({"text": chat["text"]}, kind)
    assert len({chat["question_type"] for chat in chats}) == len(PHRASINGS)


def test_excluded_sentences_are_drawn_again():
    texts = {synthetic_chat(0, k)["text"] for k in range(50)}
    redrawn = [synthetic_chat(0, k, exclude=texts)["text"] for k in range(50)]
    assert not texts & set(redrawn)


def test_items_put_the_sentence_where_the_audio_goes(tmp_path):
    texts = [synthetic_chat(0, k)["text"] for k in range(300)]
    tok = ChatTokenizer.train(texts + ["what is the first word"], tmp_path, 80)
    data = SyntheticChats(10, tok, "<|audio|> {question}", seed=0)
    item, chat = data[4], synthetic_chat(0, 4)
    assert tok.audio_id not in item["prompt_ids"]
    words = tok.encode(chat["text"])
    at = 2  # after <|bos|><|user|>
    assert item["prompt_ids"][at : at + len(words)] == words
    assert item["answer_ids"] == tok.encode(chat["answer"]) + [tok.eos_id]
    with pytest.raises(ValueError, match=">= 1"):
        SyntheticChats(0, tok, "<|audio|> {question}")


def test_voice_word_puts_the_gender_answer_before_the_sentence(tmp_path):
    chats = [synthetic_chat(0, k, voice_word=True) for k in range(200)]
    plain = [synthetic_chat(0, k) for k in range(200)]
    for chat, without in zip(chats, plain):
        voice, _, rest = chat["heard"].partition(" ")
        assert rest == chat["text"] == without["text"] == without["heard"]
        assert voice in ("<|male|>", "<|female|>")
        if chat["question_type"] == "gender":  # the slot now decides the answer
            assert f"<|{chat['answer']}|>" == voice
    texts = [c["heard"] for c in chats]
    tok = ChatTokenizer.train(texts + ["what is the first word"], tmp_path, 80)
    item = SyntheticChats(10, tok, "<|audio|> {question}", voice_word=True)[4]
    heard = tok.encode(chats[4]["heard"])
    assert item["prompt_ids"][2 : 2 + len(heard)] == heard
    voice = chats[4]["heard"].split()[0]
    assert heard[0] == tok.token_id(voice)  # one token, whatever the pieces spell
    assert tok.decode(heard) == chats[4]["text"]  # special tokens are not text


def test_transcripts_with_the_voice_word(tmp_path):
    rows = [
        {"audio_filepath": "a.wav", "question_type": "transcribe", "answer": "hi bob"},
        {"audio_filepath": "a.wav", "question_type": "gender", "answer": "female"},
        {"audio_filepath": "b.wav", "question_type": "transcribe", "answer": "no"},
    ]
    assert transcripts(rows) == {"a.wav": "hi bob", "b.wav": "no"}
    assert transcripts(rows, voice_word=True) == {"a.wav": "<|female|> hi bob"}
    corpus = tmp_path / "corpus.jsonl"
    lines = [{"audio_filepath": "b.wav", "duration": 1.0, "text": "no",
              "gender": "male"}]  # fmt: skip
    corpus.write_text("".join(json.dumps(line) + "\n" for line in lines))
    # the manifest's paths come back resolved against its folder
    assert transcripts(rows, corpus, voice_word=True) == {
        "a.wav": "<|female|> hi bob",
        str(tmp_path / "b.wav"): "<|male|> no",
    }
