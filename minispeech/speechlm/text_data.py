"""Synthetic text chats for the LM's first stage: fresh sentences, asked and answered.

The question-answer manifests hold 1,920 training sentences; a small LM memorizes
them instead of learning to read a sentence and answer from it. The corpus grammar
(data/corpus_text.py: template sentences and free word order, as the corpus mixes
them) makes new sentences without end, and qa.py answers any question about any
sentence, so the text stage can see every sentence once:
    sentence -> (question type, train phrasing) -> chat with the sentence where the
    audio will go -> answer.
Item k is drawn from random.Random(seed, k), so the set is the same on every run and
machine. The grammar is small enough to say most held-out template sentences again
(1,806 of 57,600 draws were dev, test or far texts): sentences in `exclude` (the
texts of the held-out manifests) are drawn again, so the LM never reads a held-out
text. The `gender` question cannot be answered from text: its answers are drawn at
random, which teaches the LM the question and that the text alone does not decide it;
with `voice_word` the drawn gender's voice token is written before the sentence where
the audio will go ("<|female|> send a message to nina"), so the LM learns to read the
voice from the audio slot too (without it, it learns that nothing there decides the
answer, and an adapter that carries the voice is never listened to).
"""

from __future__ import annotations

import random

import torch

from minispeech.data.corpus_text import free_sentence, sentence
from minispeech.speechlm.dataset import format_prompt
from minispeech.speechlm.qa import N_TRAIN_PHRASINGS, PHRASINGS, TRAIN_WEIGHTS, answer
from minispeech.speechlm.tokenizer import VOICE_TOKENS, ChatTokenizer

FREE_FRACTION = 0.3  # the share of free-word-order sentences in the corpus's train


def synthetic_chat(
    seed: int, index: int, exclude=frozenset(), voice_word: bool = False
) -> dict:
    """One chat: {"text", "heard" (what fills the audio slot), "prompt" (question),
    "answer", "question_type"}; its sentence is never one of `exclude`."""
    rng = random.Random(f"{seed}:{index}")
    text = None
    while text is None or text in exclude:
        text = free_sentence(rng) if rng.random() < FREE_FRACTION else sentence(rng)
    kinds = list(TRAIN_WEIGHTS)
    kind = rng.choices(kinds, weights=[TRAIN_WEIGHTS[k] for k in kinds])[0]
    question = rng.choice(PHRASINGS[kind][:N_TRAIN_PHRASINGS])
    row = {"text": text, "gender": rng.choice(["male", "female"])}
    return {
        "text": text,
        "heard": f"{VOICE_TOKENS[row['gender']]} {text}" if voice_word else text,
        "prompt": question,
        "answer": answer(row, kind),
        "question_type": kind,
    }


class SyntheticChats(torch.utils.data.Dataset):
    """`size` chats of new sentences, tokenized as QADataset's text-only items."""

    def __init__(
        self,
        size: int,
        tokenizer: ChatTokenizer,
        prompt_format: str,
        seed: int = 0,
        exclude=frozenset(),
        voice_word: bool = False,
    ):
        if size < 1:
            raise ValueError(f"synthetic: the number of chats must be >= 1, got {size}")
        self.size, self.seed, self.exclude = int(size), int(seed), frozenset(exclude)
        self.tokenizer, self.prompt_format = tokenizer, prompt_format
        self.voice_word = voice_word

    @property
    def durations(self) -> list[float]:
        """Every chat counts the same for the batch sampler."""
        return [1.0] * self.size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict:
        chat = synthetic_chat(self.seed, index, self.exclude, self.voice_word)
        user = format_prompt(self.prompt_format, chat["prompt"])
        return {
            "prompt_ids": self.tokenizer.text_prompt(user, chat["heard"]),
            "answer_ids": self.tokenizer.answer_ids(chat["answer"]),
            "answer": chat["answer"],
            "type": chat["question_type"],
            "phrasing": "train",
            "id": f"synthetic-{self.seed}-{index}",
        }
