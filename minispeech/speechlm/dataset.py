"""Question-answer data for the SpeechLM: audio + chat prompt ids + answer ids.

A QA manifest line (`minispeech corpus qa`): `audio_filepath`, `duration`, `prompt`
(the question), `answer`, `question_type`. The prompt format (config `prompt_format`,
e.g. "<|audio|> {question}") places the audio placeholder; the tokenizer wraps it
into the chat turn (tokenizer.py). One recording is asked several questions, so
decoded audio is cached per file (4 bytes a sample; `cache_audio=False` turns it
off). `text_only=True` replaces the placeholder by the recording's transcript for
the text-only first stage (the LM learns the questions and how answers follow from
the words before it ever hears audio); the transcripts come from
`transcripts_manifest` (the corpus manifest the questions were made from) or else
from the `transcribe` rows of the same recording. Every item also carries its
recording's words as `transcript_ids` (empty when neither source knows them), for
SALM's `transcript_ctc`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

from minispeech.audio.io import load_audio
from minispeech.data.manifest import (
    ManifestError,
    read_manifest,
    read_numbered_manifest,
)
from minispeech.speechlm.tokenizer import AUDIO, VOICE_TOKENS, ChatTokenizer

QA_FIELDS = ("audio_filepath", "duration", "prompt", "answer")


def format_prompt(prompt_format: str, question: str) -> str:
    """The user turn's text: `prompt_format` with {question} filled in."""
    return prompt_format.replace("{question}", question.strip())


def transcripts(rows: Sequence[dict], manifest=None, voice_word=False) -> dict:
    """audio path -> transcript: the `transcribe` rows' answers, and every row of the
    corpus `manifest` when given. With `voice_word`, the speaker's gender (from the
    `gender` rows' answers or the manifest's `gender`) goes first as a voice token:
    "<|female|> call bob";
    a recording whose gender is unknown is left out."""
    known = {
        row["audio_filepath"]: row["answer"]
        for row in rows
        if row.get("question_type") == "transcribe"
    }
    gender = {
        row["audio_filepath"]: row["answer"]
        for row in rows
        if row.get("question_type") == "gender"
    }
    if manifest is not None:
        corpus = read_manifest(manifest, required=("text",), check_audio=False)
        known.update((row["audio_filepath"], row["text"]) for row in corpus)
        gender.update(
            (row["audio_filepath"], row["gender"]) for row in corpus if "gender" in row
        )
    if not voice_word:
        return known
    return {
        path: f"{VOICE_TOKENS.get(gender[path], gender[path])} {text}"
        for path, text in known.items()
        if path in gender
    }


class QADataset(torch.utils.data.Dataset):
    """dataset[i] -> {"audio": (S,), "prompt_ids", "answer_ids", "type", "id", ...}."""

    def __init__(
        self,
        manifest: str | os.PathLike,
        tokenizer: ChatTokenizer,
        prompt_format: str = AUDIO + " {question}",
        sample_rate: int = 16000,
        text_only: bool = False,
        transcripts_manifest: str | os.PathLike | None = None,
        cache_audio: bool = True,
        voice_word: bool = False,
    ):
        numbered = read_numbered_manifest(
            manifest, required=QA_FIELDS, check_audio=not text_only, allow_repeats=True
        )
        self.rows = [row for _, row in numbered]
        self.places = [f"{manifest}:{line}" for line, _ in numbered]
        self.tokenizer, self.sample_rate = tokenizer, sample_rate
        self.prompt_format, self.text_only = prompt_format, text_only
        self.voice_word = voice_word
        self.heard = (
            transcripts(self.rows, transcripts_manifest, voice_word)
            if text_only
            else {}
        )
        self.prompts, self.answers = self._tokenize_all()
        # the words of each recording that has a `transcribe` row or a line in
        # `transcripts_manifest`, for every question about it (SALM's
        # `transcript_ctc` reads the adapted frames as these tokens)
        self.spoken = {
            path: tokenizer.encode(text)
            for path, text in transcripts(self.rows, transcripts_manifest).items()
        }
        self.cache: dict[tuple, torch.Tensor] | None = {} if cache_audio else None

    def _tokenize_all(self) -> tuple[list, list]:
        prompts, answers, problems = [], [], []
        for row, place in zip(self.rows, self.places):
            try:
                prompts.append(self.prompt_ids(row))
                answers.append(self.tokenizer.answer_ids(row["answer"]))
            except (ValueError, KeyError) as err:
                problems.append(f"{place}: {err}")
        if problems:
            raise ManifestError(problems)
        return prompts, answers

    def prompt_ids(self, row: dict) -> list[int]:
        """The chat prompt of a row (the transcript in place of the audio when
        text_only)."""
        prompt = format_prompt(self.prompt_format, row["prompt"])
        if not self.text_only:
            return self.tokenizer.chat_prompt(prompt)
        if row["audio_filepath"] not in self.heard:
            what = "transcript or gender" if self.voice_word else "transcript"
            raise KeyError(f"no {what} of this recording (text-only stage)")
        return self.tokenizer.text_prompt(prompt, self.heard[row["audio_filepath"]])

    @property
    def durations(self) -> list[float]:
        """Seconds per row (the bucketing sampler groups lengths with them)."""
        return [float(row["duration"]) for row in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        row = self.rows[index]
        item = {
            "prompt_ids": self.prompts[index],
            "answer_ids": self.answers[index],
            "answer": row["answer"],
            "type": row.get("question_type", "qa"),
            "phrasing": row.get("phrasing", "train"),
            "id": f"{os.path.basename(row['audio_filepath'])}#{index}",
            "transcript_ids": self.spoken.get(row["audio_filepath"], []),
        }
        if not self.text_only:
            item["audio"] = self._load(row)  # (S,)
            item["key"] = (row["audio_filepath"], row.get("offset", 0.0))
        return item

    def _load(self, row: dict) -> torch.Tensor:
        """The recording (S,) (its segment when the row has an offset), decoded once
        per file and segment when caching."""
        key = (row["audio_filepath"], row.get("offset", 0.0))
        if self.cache is not None and key in self.cache:
            return self.cache[key]
        segment = {}
        if "offset" in row:  # a segment of a longer file
            segment = {"offset": row["offset"], "duration": row["duration"]}
        try:
            wave = load_audio(
                row["audio_filepath"], sample_rate=self.sample_rate, **segment
            )[0]
        except (OSError, RuntimeError, ValueError) as err:
            where = row["audio_filepath"]
            raise ManifestError([f"{where}: cannot read audio: {err}"]) from None
        if self.cache is not None:
            self.cache[key] = wave
        return wave


def collate_qa(items: Sequence[dict]) -> dict:
    """Audio zero-padded (B, S) with lens (when items have audio); the variable-length
    prompt and answer id lists kept as lists (the model splices them)."""
    batch = {key: [item[key] for item in items] for key in items[0] if key != "audio"}
    if "audio" in items[0]:
        lens = torch.tensor([item["audio"].numel() for item in items])  # (B,)
        audio = torch.zeros(len(items), int(lens.max()))  # (B, S)
        for b, item in enumerate(items):
            audio[b, : lens[b]] = item["audio"]
        batch.update(audio=audio, audio_lens=lens)
    batch["ids"] = batch.pop("id")
    if "key" in batch:
        batch["keys"] = batch.pop("key")
    return batch
