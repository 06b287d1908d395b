"""The written form (`text_pnc`) of the tinyspeech texts: rules, examples, manifests."""

import json
import random
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from minispeech.data.corpus_audio import manifest_row
from minispeech.data.corpus_text import (
    DIGITS,
    ORDINALS,
    TEENS,
    TEMPLATES,
    TENS,
    free_sentence,
    long_sentence,
    number_words,
    sentence,
)
from minispeech.data.written_form import (
    is_digit_string_sentence,
    numerals,
    written_form,
)

REPO = Path(__file__).resolve().parents[2]
# a-z A-Z 0-9 ' : , in single-spaced words, one end mark
_WRITTEN = re.compile(r"^[A-Z0-9][A-Za-z0-9':,]*( [A-Za-z0-9':,]+)*[.?]$")

# One hand-worked example per template (the key is the template's name).
PER_TEMPLATE = {
    "lights": ("please turn off the garage radio", "Please turn off the garage radio."),
    "switch": ("switch on the fan in the hall", "Switch on the fan in the hall."),
    "timer": ("set a timer for fifty three minutes", "Set a timer for 53 minutes."),
    "temperature": (
        "set the temperature to twenty one degrees",
        "Set the temperature to 21 degrees.",
    ),
    "call": ("call bob at seven thirty", "Call Bob at 7:30."),
    "phone": ("my number is five two seven one", "My number is 5 2 7 1."),
    "digits": ("four one seven seven zero", "4 1 7 7 0."),
    "message": (
        "send a message to nina on monday",
        "Send a message to Nina on Monday.",
    ),
    "where": (
        "the red cup is under the table",
        "The red cup is under the table.",
    ),
    "count": ("kate has forty two blue pens", "Kate has 42 blue pens."),
    "meet": ("meet leo on friday evening", "Meet Leo on Friday evening."),
    "weather": (
        "what is the weather like on sunday",
        "What is the weather like on Sunday?",
    ),
    "music": (
        "play some jazz music in the kitchen",
        "Play some jazz music in the kitchen.",
    ),
    "pictures": (
        "show me the pictures from may",
        "Show me the pictures from May.",
    ),
    "move": ("move the green box to the left", "Move the green box to the left."),
    "greeting": ("hello nina how are you today", "Hello Nina, how are you today?"),
    "clock": ("it's half past six on friday", "It's half past 6 on Friday."),
    "remind": ("don't forget to feed the cat", "Don't forget to feed the cat."),
    "go": ("let's go to the park on tuesday", "Let's go to the park on Tuesday."),
    "animal": (
        "the big brown dog sleeps in the garden",
        "The big brown dog sleeps in the garden.",
    ),
    "pair": (
        "alice and tom are in the office",
        "Alice and Tom are in the office.",
    ),
    "shopping": (
        "add twelve eggs to the shopping list",
        "Add 12 eggs to the shopping list.",
    ),
    "volume": ("turn the volume up to ten", "Turn the volume up to 10."),
    "howmany": ("how many cups are in the hall", "How many cups are in the hall?"),
    "date": (
        "the meeting is on monday the third of may",
        "The meeting is on Monday the 3rd of May.",
    ),
    "answer": (
        "yes thank you bob see you monday",
        "Yes, thank you Bob, see you Monday.",
    ),
}


def test_one_worked_example_per_template():
    assert set(PER_TEMPLATE) == set(TEMPLATES), "add an example for a new template"
    for name, (spoken, written) in PER_TEMPLATE.items():
        assert written_form(spoken) == written, name


def test_more_openings_and_clock_forms():
    cases = {
        "call kate at nine o'clock": "Call Kate at 9 o'clock.",
        "it's quarter to ten on sunday": "It's quarter to 10 on Sunday.",
        "good morning emma how are you tomorrow": (
            "Good morning Emma, how are you tomorrow?"
        ),
        "hi how are you today": "Hi, how are you today?",
        "okay thank you sam see you on friday": (
            "Okay, thank you Sam, see you on Friday."
        ),
        "no thank you paul see you tomorrow": "No, thank you Paul, see you tomorrow.",
        "hello": "Hello.",
        "hello nina": "Hello Nina.",
        "set a timer for five minutes and call bob at twelve forty five": (
            "Set a timer for 5 minutes and call Bob at 12:45."
        ),
        "how many hats are in the hall then play some pop music in the office": (
            "How many hats are in the hall then play some pop music in the office?"
        ),
    }
    for spoken, written in cases.items():
        assert written_form(spoken) == written, spoken


def test_digit_strings():
    cases = {
        "zero zero": "0 0.",
        "my number is nine eight seven six five four": "My number is 9 8 7 6 5 4.",
        "twenty one two": "20 1 2.",  # the digit string wins over "twenty one"
        "three hundred five six": "300 5 6.",
        "seven forty five six": "7:40 5 6.",
        "one two thirty": "1 2 30.",
    }
    for spoken, written in cases.items():
        assert written_form(spoken) == written, spoken
    assert is_digit_string_sentence("my number is five two seven")
    assert is_digit_string_sentence("twenty one two")
    assert not is_digit_string_sentence("call bob at seven thirty")
    assert not is_digit_string_sentence("three hundred five")
    assert not is_digit_string_sentence("kate has forty two pens")


def test_numbers_0_to_999_round_trip():
    for n in range(1000):
        assert written_form(number_words(n)) == f"{n}.", n


def test_times():
    minutes = {"ten": 10, "fifteen": 15, "twenty": 20, "thirty": 30, "forty": 40,
               "forty five": 45, "fifty": 50}  # fmt: skip
    for hour in range(1, 13):
        for word, minute in minutes.items():
            spoken = f"call bob at {number_words(hour)} {word}"
            assert written_form(spoken) == f"Call Bob at {hour}:{minute:02d}."
        assert written_form(f"half past {number_words(hour)}") == f"Half past {hour}."
    assert written_form("seven twenty five") == "7:20 5."  # no such minutes word
    assert written_form("nine ten") == "9:10."  # also in free word order
    assert written_form("thirteen thirty") == "13 30."  # 13 is no hour


def test_ordinals():
    expected = "1st 2nd 3rd 4th 5th 10th 12th 20th".split()
    for word, written in zip(ORDINALS, expected):
        assert written_form(f"the {word} of june") == f"The {written} of June."


def test_free_sentences():
    cases = {
        "pens seven the friday o'clock hall": "Pens 7 the Friday o'clock hall.",
        "carrots twelve three on right december sits": (
            "Carrots 12 3 on right December sits."
        ),
        "up rabbit okay what emma oscar like at first": (
            "Up rabbit okay what Emma Oscar like at 1st."
        ),
        "what five two": "What 5 2?",
        "yes how zero": "Yes, how 0?",
        "twenty zero": "20 0.",
    }
    for spoken, written in cases.items():
        assert written_form(spoken) == written, spoken


def test_structure_of_random_sentences():
    rng = random.Random(20240611)
    number_words_ = set(DIGITS + TEENS.split() + TENS + ORDINALS)
    for draw in [sentence, free_sentence, long_sentence] * 1000:
        spoken = draw(rng)
        written = written_form(spoken)
        assert _WRITTEN.match(written), (spoken, written)
        assert not number_words_ & set(written.lower().split()), written
        bare = re.sub(r"[,.?]", "", written).lower()
        if not numerals(written):  # no number: only capitals and punctuation added
            assert bare == spoken, (spoken, written)
        if is_digit_string_sentence(spoken):
            assert re.search(r"\b\d \d\b", written), written


def test_numerals():
    cases = {
        "My number is 5 2 7.": ["5", "2", "7"],
        "Call Bob at 7:30.": ["7:30"],
        "The meeting is on Monday the 3rd of May.": ["3rd"],
        "Set a timer for 53 minutes and call Kate at 9 o'clock.": ["53", "9"],
        "Hello Nina, how are you today?": [],
    }
    for written, expected in cases.items():
        assert numerals(written) == expected, written


def test_refuses_text_that_is_not_spoken_form():
    for text in ["Call Bob.", "", "call  bob", "5 2 7"]:
        with pytest.raises(ValueError):
            written_form(text)


def test_manifest_row_has_text_pnc_after_text():
    speaker = SimpleNamespace(id="f001", gender="female", accent="en-US")
    row = manifest_row("a.opus", np.zeros(160), "call bob at seven thirty", speaker,
                       "template", [])  # fmt: skip
    assert list(row)[2:4] == ["text", "text_pnc"]
    assert row["text_pnc"] == "Call Bob at 7:30."


def test_committed_manifests_have_the_written_form(corpus_dir):
    paths = sorted(corpus_dir.glob("*.jsonl"))
    paths += sorted((REPO / "data" / "tts_reordered").glob("*.jsonl"))
    assert len(paths) >= 7, paths
    for path in paths:
        for line in open(path, encoding="utf-8"):
            row = json.loads(line)
            keys = list(row)
            assert keys[keys.index("text") + 1] == "text_pnc", path
            assert row["text_pnc"] == written_form(row["text"]), (path, row["text"])
