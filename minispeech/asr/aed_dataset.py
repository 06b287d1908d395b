"""Training items for a prompted AED model: which prompt, and which form of the text.

One Canary-style model learns two outputs from the same audio (Puvvada et al. 2024,
arXiv:2406.19674, Sec. 2): after `<|nopnc|>` the spoken form in the manifest's `text`
("call bob at seven thirty"), after `<|pnc|>` the written form in `text_pnc` ("Call Bob
at 7:30."). `PromptedDataset` wraps an AudioTextDataset and, per item, draws the
`<|pnc|>` task with probability `pnc_fraction` (torch's global generator, so the
training seed fixes every draw), swapping in the written form's token ids.
Items carry `pnc` (bool) and, when the manifest has it, `text_pnc` (for scoring).
"""

from __future__ import annotations

import torch

from minispeech.data import AudioTextDataset
from minispeech.data.manifest import ManifestError
from minispeech.data.written_form import is_digit_string_sentence, numerals
from minispeech.metrics import word_errors

PNC_FIELD = "text_pnc"


class PromptedDataset(torch.utils.data.Dataset):
    """dataset[i] -> the wrapped item + {"pnc": bool, "text_pnc": str | None}."""

    def __init__(self, base: AudioTextDataset, tokenizer, pnc_fraction: float = 0.0):
        if not 0.0 <= pnc_fraction <= 1.0:
            raise ValueError(f"pnc_fraction must be in [0, 1], got {pnc_fraction}")
        self.base = base
        self.pnc_fraction = float(pnc_fraction)
        self.written = [row.get(PNC_FIELD) for row in base.rows]
        self.pnc_tokens = self._tokenize_written(tokenizer) if pnc_fraction else None

    def _tokenize_written(self, tokenizer) -> list[list[int]]:
        """Token ids of every `text_pnc`; every missing or untokenizable one named."""
        tokens, problems = [], []
        for text, place in zip(self.written, self.base.places):
            if not isinstance(text, str) or not text.strip():
                problems.append(
                    f"{place}: {PNC_FIELD}: missing (pnc_fraction > 0 trains the "
                    "<|pnc|> prompt on the written form)"
                )
                continue
            try:
                tokens.append(tokenizer.encode(text))
            except (ValueError, KeyError) as err:
                problems.append(f"{place}: {PNC_FIELD}: {err}")
        if problems:
            raise ManifestError(problems)
        return tokens

    # what loaders, samplers and commands read from a dataset
    @property
    def rows(self) -> list[dict]:
        return self.base.rows

    @property
    def places(self) -> list[str]:
        return self.base.places

    @property
    def durations(self) -> list[float]:
        return self.base.durations

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict:
        item = self.base[index]
        pnc = bool(self.pnc_fraction and torch.rand(()) < self.pnc_fraction)
        if pnc:
            item["tokens"] = torch.tensor(self.pnc_tokens[index], dtype=torch.long)
        item["pnc"] = pnc
        item["text_pnc"] = self.written[index]
        return item


def written_form_scores(written: list[str], hyps: list[str], spoken: list[str]) -> dict:
    """Counts for scoring <|pnc|> output against the written forms `written`:
    word errors (words split on spaces, so "Monday." vs "monday" is one error), and
    over the sentences whose spoken form has a digit string, how many got exactly the
    reference's numerals ("5 2 7" -> ["5", "2", "7"])."""
    counts = word_errors(written, hyps)
    digits = [k for k, text in enumerate(spoken) if is_digit_string_sentence(text)]
    exact = sum(numerals(hyps[k]) == numerals(written[k]) for k in digits)
    return {
        "pnc_word_errors": counts.errors,
        "pnc_words": counts.ref_len,
        "digit_sentences": len(digits),
        "numerals_exact": exact,
    }
