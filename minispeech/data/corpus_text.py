"""The closed-vocabulary sentence templates of the bundled tinyspeech corpus.

Sentences are drawn from templates (commands, digit strings, numbers, times, names,
days, months, colours, short phrases) over word lists, so that a tiny model can learn
the whole language in minutes and still be tested on sentences and speakers it has
never heard.

Text normalization (fixed, so it fits a 28-symbol alphabet: space, a-z and the
apostrophe, as NeMo's English character models use): lowercase, words separated by
single spaces, numbers spelled out ("twenty seven"), digits read one by one ("three five
nine"), no punctuation except the apostrophe inside a word ("o'clock", "don't").
"""

import random
import re

ALPHABET = " abcdefghijklmnopqrstuvwxyz'"  # 28 symbols
_VALID = re.compile(r"^[a-z']+( [a-z']+)*$")

DIGITS = "zero one two three four five six seven eight nine".split()
TEENS = "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen"
TEENS += " nineteen"
TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
DAYS = "monday tuesday wednesday thursday friday saturday sunday".split()
MONTHS = (
    "january february march april may june july august september october november "
    "december"
).split()
PARTS_OF_DAY = "morning afternoon evening night".split()
WHEN = "today tomorrow tonight".split()
COLOURS = "red green blue yellow orange purple black white pink brown grey".split()
NAMES = (
    "alice bob carol david emma frank grace henry isabel jack kate leo maria nina "
    "oscar paul rachel sam tom victor"
).split()
ROOMS = "kitchen bedroom bathroom garden garage office hall".split()
DEVICES = "lights radio heater fan television oven".split()
OBJECTS = "ball box cup book chair table lamp bag hat key pen car".split()
PLURALS = "balls boxes cups books chairs tables lamps bags hats keys pens cars".split()
FOODS = "apples eggs bananas oranges lemons potatoes tomatoes carrots".split()
ANIMALS = "cat dog bird horse cow rabbit".split()
ANIMAL_VERBS = "sleeps plays sits waits".split()
SIZES = "big small little old young".split()
PLACES = "park beach shop school station library market".split()
PREPOSITIONS = "on under behind near".split()
DIRECTIONS = "left right up down".split()
GENRES = "jazz rock classical pop".split()
ORDINALS = "first second third fourth fifth tenth twelfth twentieth".split()
GREETINGS = ["hello", "good morning", "good evening", "hi"]
TASKS = [
    "close the window", "open the door", "feed the cat", "call your mother",
    "lock the car", "water the garden", "take your keys", "read the message",
]  # fmt: skip


def number_words(n: int) -> str:
    """0..999 spelled out: 7 -> "seven", 42 -> "forty two", 305 -> "three hundred
    five"."""
    if not 0 <= n <= 999:
        raise ValueError(f"number_words handles 0..999, got {n}")
    if n < 10:
        return DIGITS[n]
    if n < 20:
        return TEENS.split()[n - 10]
    if n < 100:
        tens, units = divmod(n, 10)
        return TENS[tens - 2] + ("" if units == 0 else " " + DIGITS[units])
    hundreds, rest = divmod(n, 100)
    tail = "" if rest == 0 else " " + number_words(rest)
    return DIGITS[hundreds] + " hundred" + tail


def digit_string(rng: random.Random, n_min: int, n_max: int) -> str:
    """Digits read one by one, e.g. "four one seven seven zero"."""
    return " ".join(rng.choice(DIGITS) for _ in range(rng.randint(n_min, n_max)))


def clock_time(rng: random.Random) -> str:
    """A time of day as said aloud: "seven thirty", "half past six", "nine o'clock"."""
    hour = number_words(rng.randint(1, 12))
    form = rng.randrange(4)
    if form == 0:
        return f"{hour} o'clock"
    if form == 1:
        return f"half past {hour}"
    if form == 2:
        return f"quarter to {hour}"
    return f"{hour} {number_words(rng.choice([10, 15, 20, 30, 40, 45, 50]))}"


def _pick(rng: random.Random, words: list) -> str:
    return rng.choice(words)


def _weather(r: random.Random) -> str:
    when = _pick(r, WHEN) if r.random() < 0.3 else "on " + _pick(r, DAYS)
    return f"what is the weather like {when}"


def _on_off(r: random.Random) -> str:
    return _pick(r, ["on", "off"])


def _n(r: random.Random, low: int, high: int) -> str:
    return number_words(r.randint(low, high))


def _see_you(r: random.Random) -> str:
    return _pick(r, WHEN[1:] + ["on " + day for day in DAYS])


# Each template is a function of the random generator, named for the README's table.
P = _pick
TEMPLATES = {
    "lights": lambda r: f"please turn {_on_off(r)} the {P(r, ROOMS)} {P(r, DEVICES)}",
    "switch": lambda r: f"switch {_on_off(r)} the {P(r, DEVICES)} in the {P(r, ROOMS)}",
    "timer": lambda r: f"set a timer for {_n(r, 2, 59)} minutes",
    "temperature": lambda r: f"set the temperature to {_n(r, 12, 30)} degrees",
    "call": lambda r: f"call {P(r, NAMES)} at {clock_time(r)}",
    "phone": lambda r: f"my number is {digit_string(r, 4, 6)}",
    "digits": lambda r: digit_string(r, 5, 7),
    "message": lambda r: f"send a message to {P(r, NAMES)} on {P(r, DAYS)}",
    "where": lambda r: (
        f"the {P(r, COLOURS)} {P(r, OBJECTS)} is "
        f"{P(r, PREPOSITIONS)} the {P(r, OBJECTS)}"
    ),
    "count": lambda r: (
        f"{P(r, NAMES)} has {_n(r, 2, 99)} {P(r, COLOURS)} {P(r, PLURALS)}"
    ),
    "meet": lambda r: f"meet {P(r, NAMES)} on {P(r, DAYS)} {P(r, PARTS_OF_DAY)}",
    "weather": _weather,
    "music": lambda r: f"play some {P(r, GENRES)} music in the {P(r, ROOMS)}",
    "pictures": lambda r: f"show me the pictures from {P(r, MONTHS)}",
    "move": lambda r: (
        f"move the {P(r, COLOURS)} {P(r, OBJECTS)} to the {P(r, DIRECTIONS)}"
    ),
    "greeting": lambda r: (
        f"{P(r, GREETINGS)} {P(r, NAMES)} how are you {P(r, WHEN[:2])}"
    ),
    "clock": lambda r: f"it's {clock_time(r)} on {P(r, DAYS)}",
    "remind": lambda r: f"don't forget to {P(r, TASKS)}",
    "go": lambda r: f"let's go to the {P(r, PLACES)} on {P(r, DAYS)}",
    "animal": lambda r: (
        f"the {P(r, SIZES)} {P(r, COLOURS)} {P(r, ANIMALS)} "
        f"{P(r, ANIMAL_VERBS)} in the {P(r, ROOMS)}"
    ),
    "pair": lambda r: f"{P(r, NAMES)} and {P(r, NAMES)} are in the {P(r, ROOMS)}",
    "shopping": lambda r: f"add {_n(r, 2, 12)} {P(r, FOODS)} to the shopping list",
    "volume": lambda r: f"turn the volume {P(r, ['up', 'down'])} to {_n(r, 1, 10)}",
    "howmany": lambda r: f"how many {P(r, PLURALS)} are in the {P(r, ROOMS)}",
    "date": lambda r: (
        f"the meeting is on {P(r, DAYS)} the {P(r, ORDINALS)} of {P(r, MONTHS)}"
    ),
    "answer": lambda r: (
        f"{P(r, ['yes', 'no', 'okay'])} thank you {P(r, NAMES)} see you {_see_you(r)}"
    ),
}
# The words the templates spell out themselves (besides the word lists above).
FIXED_WORDS = (
    "turn switch on off the in set a timer for minutes temperature to degrees call at "
    "my number is send message meet what weather like play some music show me "
    "pictures from move how are you it's don't forget let's go has and add shopping "
    "list volume up down many meeting of yes no okay thank please see "
    "o'clock half past quarter then"
).split()


def check_text(text: str) -> None:
    """Raise ValueError unless `text` is normalized (28 symbols, single spaces)."""
    if not _VALID.match(text):
        raise ValueError(f"text is not a-z and ' in single-spaced words: {text!r}")


def sentence(rng: random.Random) -> str:
    """One sentence from a uniformly chosen template."""
    name = rng.choice(sorted(TEMPLATES))
    text = TEMPLATES[name](rng)
    check_text(text)
    return text


def free_sentence(rng: random.Random) -> str:
    """Free word order: as many words as a template sentence would have, each drawn
    uniformly from the vocabulary ("pens seven the friday o'clock hall")."""
    n_words = len(sentence(rng).split())
    words = vocabulary()
    text = " ".join(rng.choice(words) for _ in range(n_words))
    check_text(text)
    return text


def long_sentence(rng: random.Random) -> str:
    """Two template sentences joined by "and" or "then": longer phrases for TTS."""
    return f"{sentence(rng)} {rng.choice(['and', 'then'])} {sentence(rng)}"


def vocabulary() -> list[str]:
    """Every word any template can produce, sorted."""
    words = set(DIGITS + TEENS.split() + TENS + FIXED_WORDS)
    for group in (DAYS, MONTHS, PARTS_OF_DAY, WHEN, COLOURS, NAMES, ROOMS, DEVICES,
                  OBJECTS, PLURALS, FOODS, ANIMALS, ANIMAL_VERBS, SIZES, PLACES,
                  PREPOSITIONS, DIRECTIONS, GENRES, ORDINALS):  # fmt: skip
        words.update(group)
    for phrase in GREETINGS + TASKS:
        words.update(phrase.split())
    return sorted(words)
