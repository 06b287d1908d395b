"""Questions about a recording, with their answers, for training a SpeechLM.

The training data of a SALM-style model (Chen et al. 2023, "SALM: Speech-augmented
Language Model with In-context Learning for Speech Recognition and Translation",
arXiv:2310.09424): each example is (audio, text prompt, answer). SALM's
prompts are task instructions for ASR and speech translation; here they are questions
about the recording whose answers come from a tinyspeech manifest row, so that a tiny
model can be checked on understanding, not only on transcription:

| type         | answer                                                         |
| ------------ | -------------------------------------------------------------- |
| `transcribe` | the text                                                       |
| `day`        | the first day (DAYS) in the text, else "none"                  |
| `colour`     | the first colour (COLOURS) in the text, else "none"            |
| `name`       | the first name (NAMES) in the text, else "none"                |
| `number`     | the first number in the text, as spoken (rule below), or "none"|
| `count`      | the number of words, spelled out ("seven")                     |
| `first_word` | the first word                                                 |
| `last_word`  | the last word                                                  |
| `gender`     | the speaker's gender: "male" or "female"                       |

The number rule: the first word that can start a number starts the answer, and the
answer is the longest number that `number_words` could have spelled from there:
[one..nine "hundred"] then [a tens word (+ one..nine) | a teen | a digit]. So "fifty
three" and "three hundred five" are one number each, a tens word takes at most one
following unit ("twenty seven"), and digits never join: the digit string "five two
seven" answers "five", and the clock time "seven thirty" answers "seven". Ordinals
("third"), "half", "quarter" and "o'clock" are not numbers.

Each type has four phrasings: the first three are "train" phrasings (every split), the
fourth is "heldout" (test files only), to measure whether the model follows a question
it has never seen worded that way.

Per split (`qa_rows`):
- train: `per_utterance` distinct types per utterance (default 3), drawn at random
  without replacement with weight 2 for `transcribe` and 1 for each other type
  (TRAIN_WEIGHTS), each with a random train phrasing; deterministic for a seed. With
  3 per utterance, 54% of utterances get a transcribe question, and of the questions
  18% are transcribe and 10% each other type.
- dev: every type once per utterance, with a train phrasing (rotated with the utterance
  so the three are equally frequent).
- test: as dev, plus every type with the held-out phrasing (2 x 9 rows per utterance).
"""

import random
from collections import Counter, defaultdict
from collections.abc import Sequence

from minispeech.data.corpus_text import (
    COLOURS,
    DAYS,
    DIGITS,
    NAMES,
    TEENS,
    TENS,
    number_words,
)
from minispeech.data.manifest import ManifestError

__all__ = [
    "QUESTION_TYPES",
    "PHRASINGS",
    "TRAIN_WEIGHTS",
    "answer",
    "first_number",
    "qa_rows",
    "majority_baseline",
    "baseline_table",
]

QUESTION_TYPES = (
    "transcribe", "day", "colour", "name", "number", "count", "first_word",
    "last_word", "gender",
)  # fmt: skip
N_TRAIN_PHRASINGS = 3  # PHRASINGS[type][:3] train, PHRASINGS[type][3] held out
PHRASINGS = {
    "transcribe": (
        "what does the speaker say",
        "transcribe the recording",
        "what words are spoken",
        "write down what you hear",
    ),
    "day": (
        "what day is mentioned",
        "which day does the speaker say",
        "what day of the week do you hear",
        "name the day in the recording",
    ),
    "colour": (
        "what colour is mentioned",
        "which colour does the speaker say",
        "what colour do you hear",
        "name the colour in the recording",
    ),
    "name": (
        "what name is mentioned",
        "which name does the speaker say",
        "whose name do you hear",
        "name the person in the recording",
    ),
    "number": (
        "what number is mentioned",
        "which number does the speaker say",
        "what number do you hear",
        "tell me the number in the recording",
    ),
    "count": (
        "how many words are spoken",
        "how many words does the speaker say",
        "count the words in the recording",
        "what is the number of words you hear",
    ),
    "first_word": (
        "what is the first word",
        "which word does the speaker say first",
        "what word does the recording start with",
        "what word comes first",
    ),
    "last_word": (
        "what is the last word",
        "which word does the speaker say last",
        "what word does the recording end with",
        "what word comes at the end",
    ),
    "gender": (
        "is the speaker male or female",
        "is the voice male or female",
        "what is the gender of the speaker",
        "is this a man or a woman speaking",
    ),
}
# Train draw weights: transcribe (the whole text, the hardest answer) twice as likely.
TRAIN_WEIGHTS = {kind: 2 if kind == "transcribe" else 1 for kind in QUESTION_TYPES}
SPLITS = ("train", "dev", "test")
NONE = "none"  # the answer when nothing of the asked kind is mentioned

_UNITS = {word: value for value, word in enumerate(DIGITS)}  # zero..nine
_TEENS = set(TEENS.split())
_TENS = set(TENS)


def _at(words: Sequence[str], k: int) -> str:
    return words[k] if k < len(words) else ""


def _below_hundred(words: Sequence[str], k: int) -> int:
    """How many words the 0..99 number at words[k] spans (0: none starts there)."""
    if words[k] in _TENS:
        return 2 if _UNITS.get(_at(words, k + 1), 0) > 0 else 1  # "fifty three"
    return 1 if words[k] in _TEENS or words[k] in _UNITS else 0


def _number_length(words: Sequence[str], k: int) -> int:
    """How many words the number at words[k] spans (0: none starts there)."""
    if _UNITS.get(words[k], 0) > 0 and _at(words, k + 1) == "hundred":
        tail = k + 2 < len(words) and words[k + 2] != "zero"
        return 2 + (_below_hundred(words, k + 2) if tail else 0)  # "three hundred"
    return _below_hundred(words, k)


def first_number(text: str) -> str:
    """The first number spoken in `text` (module docstring's rule), else "none"."""
    words = text.split()
    for k in range(len(words)):
        length = _number_length(words, k)
        if length:
            return " ".join(words[k : k + length])
    return NONE


def _first_of(text: str, vocabulary: Sequence[str]) -> str:
    wanted = set(vocabulary)
    return next((word for word in text.split() if word in wanted), NONE)


def _gender(row: dict) -> str:
    gender = row.get("gender")
    if gender not in ("male", "female"):
        where = row.get("audio_filepath", "a row")
        problem = f'gender: must be "male" or "female", got {gender!r}'
        raise ManifestError([f"{where}: {problem} (needed for gender questions)"])
    return gender


_ANSWERS = {
    "transcribe": lambda row: row["text"],
    "day": lambda row: _first_of(row["text"], DAYS),
    "colour": lambda row: _first_of(row["text"], COLOURS),
    "name": lambda row: _first_of(row["text"], NAMES),
    "number": lambda row: first_number(row["text"]),
    "count": lambda row: number_words(len(row["text"].split())),
    "first_word": lambda row: row["text"].split()[0],
    "last_word": lambda row: row["text"].split()[-1],
    "gender": _gender,
}


def answer(row: dict, question_type: str) -> str:
    """The answer to a `question_type` question about a corpus row (needs `text`;
    `gender` for gender questions)."""
    if question_type not in _ANSWERS:
        raise ValueError(f"unknown question type {question_type!r}: {QUESTION_TYPES}")
    return _ANSWERS[question_type](row)


def _train_types(rng: random.Random, per_utterance: int) -> list[str]:
    """`per_utterance` distinct types, drawn with TRAIN_WEIGHTS without replacement."""
    types = list(QUESTION_TYPES)
    chosen = []
    for _ in range(per_utterance):
        weights = [TRAIN_WEIGHTS[kind] for kind in types]
        chosen.append(types.pop(rng.choices(range(len(types)), weights)[0]))
    return chosen


def _questions(k: int, split: str, rng: random.Random, per_utterance: int) -> list:
    """The (type, phrasing, prompt) questions asked about utterance k of `split`."""
    if split == "train":
        return [
            (kind, "train", rng.choice(PHRASINGS[kind][:N_TRAIN_PHRASINGS]))
            for kind in _train_types(rng, per_utterance)
        ]
    asked = [
        (kind, "train", PHRASINGS[kind][(k + i) % N_TRAIN_PHRASINGS])
        for i, kind in enumerate(QUESTION_TYPES)
    ]
    if split == "test":
        held_out = N_TRAIN_PHRASINGS
        asked += [
            (kind, "heldout", PHRASINGS[kind][held_out]) for kind in QUESTION_TYPES
        ]
    return asked


def _qa_row(row: dict, kind: str, phrasing: str, prompt: str) -> dict:
    qa = {"audio_filepath": row["audio_filepath"], "duration": row["duration"]}
    if "offset" in row:
        qa["offset"] = row["offset"]
    return {
        **qa,
        "prompt": prompt,
        "answer": answer(row, kind),
        "question_type": kind,
        "phrasing": phrasing,
        "speaker": row["speaker"],
    }


def qa_rows(
    rows: Sequence[dict], split: str, seed: int = 0, per_utterance: int = 3
) -> list[dict]:
    """Question rows about corpus `rows` (module docstring: which questions per split).

    Each row: `audio_filepath`, `duration` (and `offset`) copied from the corpus row,
    `prompt`, `answer`, `question_type`, `phrasing` ("train"/"heldout"), `speaker`.
    Audio paths are copied as they are: rows from `read_manifest` hold absolute paths,
    and `write_manifest(path, rows, relative_to=folder)` makes them relative to the
    output manifest's folder. `seed` and `per_utterance` matter for train only.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not 1 <= per_utterance <= len(QUESTION_TYPES):
        raise ValueError(f"per_utterance must be in 1..9, got {per_utterance}")
    rng = random.Random(seed)
    return [
        _qa_row(row, kind, phrasing, prompt)
        for k, row in enumerate(rows)
        for kind, phrasing, prompt in _questions(k, split, rng, per_utterance)
    ]


def majority_baseline(rows: Sequence[dict]) -> dict[str, tuple[str, float]]:
    """Per question type, the most frequent answer and the accuracy of always giving
    it: {type: (answer, accuracy)}; ties go to the alphabetically first answer."""
    counts = defaultdict(Counter)
    for row in rows:
        counts[row["question_type"]][row["answer"]] += 1
    rank = {kind: k for k, kind in enumerate(QUESTION_TYPES)}
    baseline = {}
    for kind in sorted(counts, key=lambda kind: (rank.get(kind, len(rank)), kind)):
        best, n = min(counts[kind].items(), key=lambda item: (-item[1], item[0]))
        baseline[kind] = (best, n / counts[kind].total())
    return baseline


def baseline_table(rows: Sequence[dict]) -> str:
    """A Markdown table: per type, its rows and the majority-answer baseline."""
    per_type = Counter(row["question_type"] for row in rows)
    lines = ["| type | rows | majority answer | accuracy |", "|---|---|---|---|"]
    for kind, (best, accuracy) in majority_baseline(rows).items():
        shown = best if len(best) <= 40 else best[:37] + "..."
        lines.append(f"| {kind} | {per_type[kind]} | {shown} | {accuracy:.1%} |")
    return "\n".join(lines)
