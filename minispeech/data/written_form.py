"""The written form ("text_pnc") of a tinyspeech text: capitals, punctuation, numerals.

The corpus text is spoken form ("call bob at seven thirty"). An encoder-decoder ASR
model prompted as Canary is (Puvvada et al. 2024, "Less is More: Accurate Speech
Recognition & Translation without Web-Scale Data", arXiv:2406.19674: a prompt token
turns punctuation and capitalization on, `<|pnc|>`, or off) is trained to write
"Call Bob at 7:30." instead. `written_form` is a deterministic function of the spoken
text alone, so it also applies to free word order; `numerals` lists the numbers of a
written text, for an exact-match score.

Rules, applied to the words of a normalized spoken text (`corpus_text.check_text`):

1. Digit strings. A run of >= 2 single-digit words (zero..nine) is a digit string: one
   numeral per word, separated by single spaces ("my number is 5 2 7 1"). A digit word
   right before "hundred" is not a single-digit word. Digit strings win over every rule
   below.
2. Times. An hour word (one..twelve) followed by a minutes word ("ten", "fifteen",
   "twenty", "thirty", "forty", "forty five", "fifty": the minutes `clock_time` says)
   is H:MM ("seven thirty" -> "7:30", "twelve forty five" -> "12:45"). "o'clock",
   "half past" and "quarter to" stay words ("9 o'clock", "half past 6").
3. Numbers. Otherwise number words become a numeral, read greedily from the left:
   [one..nine "hundred"] then one of: teen | tens [one..nine] | one..nine. So
   "fifty three" -> "53", "three hundred five" -> "305", "ten" -> "10", "zero" -> "0".
4. Ordinals: first second third fourth fifth tenth twelfth twentieth -> 1st 2nd 3rd
   4th 5th 10th 12th 20th.
5. Capitals: the first word, names, days and months.
6. Commas: after an opening "yes", "no" or "okay"; after an opening greeting ("hello",
   "hi", "good morning", "good evening") and the name that follows it, if any; after
   the name in "thank you NAME" (anywhere). Only when more words follow.
7. End: "?" if the text, past the opening of rule 6, starts with "how" or "what";
   "." otherwise.

Examples (spoken -> written):

    send a message to nina on monday
      -> Send a message to Nina on Monday.
    my number is five two seven one
      -> My number is 5 2 7 1.
    set a timer for fifty three minutes
      -> Set a timer for 53 minutes.
    it's half past six on friday
      -> It's half past 6 on Friday.
    the meeting is on monday the third of may
      -> The meeting is on Monday the 3rd of May.
    hello nina how are you today
      -> Hello Nina, how are you today?
    yes thank you bob see you monday
      -> Yes, thank you Bob, see you Monday.
    pens seven the friday o'clock hall
      -> Pens 7 the Friday o'clock hall.

Ambiguous cases, resolved:
- "twenty one two" -> "20 1 2", not "21 2" (rule 1 first).
- "one ten", "nine fifteen" -> "1:10", "9:15": an hour then a minutes word is always a
  time, also in free word order. "seven twenty five" -> "7:20 5" ("twenty five" is no
  minutes word of the corpus).
- "second" is always the ordinal "2nd" and "may" always the month "May" (the corpus has
  no other sense of either).
- "twenty zero" -> "20 0"; "hundred" (not in the corpus vocabulary) only after
  one..nine, and "three hundred five six" -> "300 5 6" (rule 1 first).
- The TTS texts join two sentences with "and"/"then"; they are written as one sentence,
  whose commas and end mark are decided by its opening.

Every output uses only a-z A-Z 0-9 and the characters ' : , . ? and single spaces; it
lowercases back to the spoken words where the text has no number and no ordinal.
"""

import re

from minispeech.data.corpus_text import (
    DAYS,
    DIGITS,
    MONTHS,
    NAMES,
    ORDINALS,
    TEENS,
    TENS,
    check_text,
)

_VALUES = {word: n for n, word in enumerate(DIGITS)}
_VALUES.update({word: 10 + n for n, word in enumerate(TEENS.split())})
_VALUES.update({word: 20 + 10 * n for n, word in enumerate(TENS)})
_HOURS = {word: _VALUES[word] for word in DIGITS[1:] + ["ten", "eleven", "twelve"]}
_MINUTES = {"ten", "fifteen", "twenty", "thirty", "forty", "fifty"}  # + "forty five"
_ORDINALS = dict(zip(ORDINALS, "1st 2nd 3rd 4th 5th 10th 12th 20th".split()))
_CAPITALIZED = set(NAMES + DAYS + MONTHS)
_GREETINGS = [["hello"], ["hi"], ["good", "morning"], ["good", "evening"]]
_NUMERAL = re.compile(r"\d+(?::\d\d)?(?:st|nd|rd|th)?")


def _single_digits(words: list[str]) -> list[bool]:
    """Per word: a single-digit word (a digit not followed by "hundred")."""
    following = words[1:] + [""]
    return [w in DIGITS and nxt != "hundred" for w, nxt in zip(words, following)]


def _digit_runs(words: list[str]) -> list[tuple[int, int]]:
    """(start, end) word spans of the digit strings: runs of >= 2 single digits."""
    single, runs, start = _single_digits(words) + [False], [], 0
    for i, is_digit in enumerate(single):
        if not is_digit:
            if i - start >= 2:
                runs.append((start, i))
            start = i + 1
    return runs


def is_digit_string_sentence(spoken_text: str) -> bool:
    """True if the spoken text has a digit string: >= 2 single-digit words in a row."""
    return bool(_digit_runs(spoken_text.split()))


def _below_100(words: list[str], i: int, free: list[bool]) -> tuple[int, int] | None:
    """(value, end) of teen | tens [one..nine] | zero..nine starting at word i."""
    if not free[i] or words[i] not in _VALUES:
        return None
    value = _VALUES[words[i]]
    if words[i] in TENS and free[i + 1] and words[i + 1] in DIGITS[1:]:
        return value + _VALUES[words[i + 1]], i + 2
    return value, i + 1


def _minutes(words: list[str], i: int, free: list[bool]) -> tuple[int, int] | None:
    """(minutes, end) of a minutes word starting at word i (rule 2)."""
    if not free[i] or words[i] not in _MINUTES:
        return None
    if words[i] == "forty" and free[i + 1] and words[i + 1] == "five":
        return 45, i + 2
    return _VALUES[words[i]], i + 1


def _number(words: list[str], i: int, free: list[bool]) -> tuple[str, int] | None:
    """(numeral, end) of the number or time starting at word i (rules 2 and 3)."""
    # 1) hundreds: one..nine "hundred" [1..99]
    if free[i] and words[i] in DIGITS[1:] and words[i + 1] == "hundred":
        tail = _below_100(words, i + 2, free)
        if tail is None or tail[0] == 0:
            return str(100 * _VALUES[words[i]]), i + 2
        return str(100 * _VALUES[words[i]] + tail[0]), tail[1]
    # 2) an hour followed by minutes is a time
    if free[i] and words[i] in _HOURS:
        minutes = _minutes(words, i + 1, free)
        if minutes is not None:
            return f"{_HOURS[words[i]]}:{minutes[0]:02d}", minutes[1]
    # 3) a number below 100
    below = _below_100(words, i, free)
    return None if below is None else (str(below[0]), below[1])


def _numerals(words: list[str]) -> list[str]:
    """The words with digit strings, times, numbers and ordinals as numerals."""
    runs = {start: end for start, end in _digit_runs(words)}
    free = [True] * len(words) + [False, False]  # padded: lookahead past the end
    for start, end in runs.items():
        free[start:end] = [False] * (end - start)
    padded, out, i = words + ["", ""], [], 0
    while i < len(words):
        if i in runs:
            out.append(" ".join(str(_VALUES[w]) for w in words[i : runs[i]]))
            i = runs[i]
            continue
        number = _number(padded, i, free)
        if number is not None:
            out.append(number[0])
            i = number[1]
            continue
        out.append(_ORDINALS.get(words[i], words[i]))
        i += 1
    return out


def _opening(words: list[str]) -> int:
    """How many words the opening (rule 6: yes/no/okay, greeting [name]) has."""
    if words[0] in ("yes", "no", "okay"):
        return 1
    for greeting in _GREETINGS:
        n = len(greeting)
        if words[:n] == greeting:
            return n + 1 if len(words) > n and words[n] in NAMES else n
    return 0


def _comma_after(words: list[str]) -> set[int]:
    """Indices of the words a comma follows (rule 6)."""
    commas = {_opening(words) - 1} if _opening(words) > 0 else set()
    for i in range(len(words) - 2):
        if words[i : i + 2] == ["thank", "you"] and words[i + 2] in NAMES:
            commas.add(i + 2)
    return {i for i in commas if i < len(words) - 1}


def written_form(text: str) -> str:
    """Spoken-form corpus text -> written form (module docstring: rules 1-7).

    "call kate at nine o'clock" -> "Call Kate at 9 o'clock."
    """
    check_text(text)
    words = text.split()
    question = words[_opening(words) :][:1] in (["how"], ["what"])
    commas = _comma_after(words)
    # STEP 1: capitals and commas on the spoken words (never on a number word)
    marked = [
        (w.capitalize() if w in _CAPITALIZED else w) + ("," if i in commas else "")
        for i, w in enumerate(words)
    ]
    # STEP 2: number words -> numerals (capitalized and comma'd words never match)
    tokens = _numerals(marked)
    tokens[0] = tokens[0][0].upper() + tokens[0][1:]
    return " ".join(tokens) + ("?" if question else ".")


def numerals(written: str) -> list[str]:
    """The numeral tokens of a written-form text, in order: digits, H:MM, ordinals.

    "My number is 5 2 7." -> ["5", "2", "7"]; "Call Bob at 7:30." -> ["7:30"]
    """
    return _NUMERAL.findall(written)
