"""The speakers of tinyspeech: espeak-ng variant x pitch x range x rate x accent.

A speaker's identity is its variant (formants, voicing, tilt: the timbre) and its base
pitch; range, rate and accent vary how it speaks. Two speakers of one variant are kept
>= 16 pitch steps apart (corpus notes: steps of >= 15 on the `-p` scale are distinct).

Pitches come from the grid 10, 26, 42, 58, 74, 90. A training variant uses one half of
the grid (10/42/74 or 26/58/90, alternating along the variant list), so a held-out
speaker of a training variant takes a pitch of the other half: >= 16 steps from every
training speaker of that variant. Held-out variants (dev/test "unseen", far) are
reserved and never trained on. Accents are split the same way: training accents, one
accent only dev and test use, and accents only the far split uses.
"""

import random
from dataclasses import dataclass

from minispeech.data.espeak import Voice

# accent label -> espeak-ng language voice (espeak-ng-data/lang/gmw/...)
ACCENT_VOICES = {
    "en-US": "gmw/en-US",
    "en-GB": "gmw/en",
    "en-GB-scotland": "gmw/en-GB-scotland",
    "en-029": "gmw/en-029",  # Caribbean
    "en-GB-x-gbcwmd": "gmw/en-GB-x-gbcwmd",  # West Midlands
    "en-GB-x-rp": "gmw/en-GB-x-rp",  # Received Pronunciation
    "en-US-nyc": "gmw/en-US-nyc",  # New York City
    "en-GB-x-gbclan": "gmw/en-GB-x-gbclan",  # Lancastrian
}
TRAIN_ACCENTS = ("en-US", "en-GB", "en-GB-scotland", "en-029", "en-GB-x-gbcwmd")
HELDOUT_ACCENTS = ("en-GB-x-rp",)  # dev and test only (half of their speakers)
FAR_ACCENTS = ("en-US-nyc", "en-GB-x-gbclan")  # far only

# Voiced espeak-ng variants (espeak-ng-data/voices/!v) by gender. Left out: whisper,
# whisperf and caleb (unvoiced), croak, grandpa and grandma (half-voiced, flutter 20),
# Demonic and RicishayMax (heavy effects), "Mr serious" (a space in its name) and Lee
# (the TTS voice). zac is a child's voice (F0 ~340 Hz), listed with the female ones.
FEMALE = (
    "Alicia Andrea Annie anika anikaRobot aunty belinda f1 f2 f3 f4 f5 linda robosoft6 "
    "robosoft8 shelby steph steph2 steph3 zac"
).split()
MALE = (
    "Alex Andy AnxiousAndy Denis Diogo Gene Gene2 Henrique Hugo Jacky Marco Mario "
    "Michael Mike Nguyen Reed RicishayMax2 RicishayMax3 Storm Tweaky UniRobot adam "
    "announcer antonio benjamin boris david ed edward edward2 fast gustave ian iven "
    "iven2 iven3 iven4 john kaukovalta klatt klatt2 klatt3 klatt4 klatt5 klatt6 m1 m2 "
    "m3 m4 m5 m6 m7 m8 marcelo max michel miguel mike2 norbert pablo paul pedro "
    "quincy rob robert robosoft robosoft2 robosoft3 robosoft4 robosoft5 robosoft7 "
    "sandro travis victor"
).split()
DEV_UNSEEN = ("shelby", "anika", "victor", "michel")  # variants only dev uses
TEST_UNSEEN = ("f4", "Alicia", "belinda", "m8", "travis")  # variants only test uses
FAR_VARIANTS = ("aunty", "steph3", "m5", "gustave", "Jacky")  # variants only far uses
PITCH_GRID = (10, 26, 42, 58, 74, 90)  # 16 steps apart


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker of the corpus."""

    id: str  # "m001", "f001", ..., "tts01"
    split: str  # train, dev, test, far or tts
    variant: str  # espeak-ng voice variant (espeak-ng-data/voices/!v)
    pitch: int  # base pitch, 0-99 (-p)
    range: int  # pitch range, 0-99
    rate: int  # words per minute (-s)
    accent: str = "en-US"  # a key of ACCENT_VOICES

    @property
    def gender(self) -> str:
        return "female" if self.variant in FEMALE else "male"

    @property
    def voice(self) -> Voice:
        name = f"{ACCENT_VOICES[self.accent]}+{self.variant}"
        return Voice(name, self.rate, self.pitch, self.range)


TTS_SPEAKER = Speaker("tts01", "tts", "Lee", 50, 50, 165)


def train_variants() -> list[str]:
    """Variants training speakers use, in a fixed order (alternating pitch halves)."""
    reserved = set(DEV_UNSEEN + TEST_UNSEEN + FAR_VARIANTS)
    return [v for v in sorted(FEMALE + MALE, key=str.lower) if v not in reserved]


def _train_pitches(variant_index: int) -> tuple[int, ...]:
    return PITCH_GRID[variant_index % 2 :: 2]  # 10/42/74 or 26/58/90


def _train(n: int) -> list[tuple]:
    """(variant, pitch) of n training speakers: genders alternate while both last;
    each gender's variants are used round robin, each at up to three pitches."""
    variants = train_variants()
    index = {v: i for i, v in enumerate(variants)}
    queues = {}
    for gender in (FEMALE, MALE):
        mine = [v for v in variants if v in gender]
        queues[id(gender)] = [
            (v, _train_pitches(index[v])[(index[v] + round_) % 3])
            for round_ in range(3)
            for v in mine
        ]
    female, male = queues[id(FEMALE)], queues[id(MALE)]
    if n > len(female) + len(male):
        raise ValueError(f"at most {len(female) + len(male)} training speakers")
    out = []
    while len(out) < n:
        for queue in (female, male):
            if queue and len(out) < n:
                out.append(queue.pop(0))
    return out


def _range_rate(rng: random.Random, rates=(120, 240)) -> tuple[int, int]:
    return rng.randrange(20, 81, 5), rng.randrange(rates[0], rates[1] + 1, 5)


def _heldout(unseen: tuple, n_seen: int, trained: list, taken: set, rng) -> list:
    """(variant, pitch) of dev/test speakers: the unseen variants at a random grid
    pitch, then `n_seen` training variants (none in `taken`) at a pitch of the other
    grid half."""
    out = [(v, rng.choice(PITCH_GRID[1:5])) for v in unseen]
    index = {v: i for i, v in enumerate(train_variants())}
    used = {v for v, _ in trained}
    picks = []
    for gender, n in ((FEMALE, n_seen // 2), (MALE, n_seen - n_seen // 2)):
        pool = [v for v in train_variants() if v in gender and v not in taken]
        trained_pool = [v for v in pool if v in used]  # tiny builds: not enough
        picks += rng.sample(trained_pool if len(trained_pool) >= n else pool, n)
    for v in picks:
        other = PITCH_GRID[1 - index[v] % 2 :: 2]
        out.append((v, rng.choice(other)))
    return out


def make_speakers(
    n_train: int = 120, seed: int = 0, train_accents: tuple = TRAIN_ACCENTS
) -> list[Speaker]:
    """All speakers: n_train training, 8 dev, 10 test, 10 far, and the TTS voice."""
    rng = random.Random(f"tinyspeech-speakers-{seed}")
    trained = _train(n_train)
    rows = [(v, p, rng.choice(train_accents), "train", 0) for v, p in trained]
    dev = _heldout(DEV_UNSEEN, 4, trained, set(), rng)
    test = _heldout(TEST_UNSEEN, 5, trained, {v for v, _ in dev}, rng)
    for split, group in (("dev", dev), ("test", test)):
        for k, (v, p) in enumerate(group):  # every other one: the unseen accent
            accent = HELDOUT_ACCENTS[0] if k % 2 == 0 else rng.choice(train_accents)
            rows.append((v, p, accent, split, 0))
    for k, v in enumerate(FAR_VARIANTS):  # each far variant low and high
        for j, pitch in enumerate((rng.choice((10, 12, 15)), rng.choice((85, 88, 90)))):
            slow_fast = 1 + (k // 2 + j) % 2  # 1: ~120-130 wpm, 2: ~220-240 wpm
            rows.append((v, pitch, FAR_ACCENTS[(k + j) % 2], "far", slow_fast))
    return _number(rows, rng)


def _number(rows: list, rng: random.Random) -> list[Speaker]:
    """Give ids (m001/f001 in order) and draw range and rate."""
    counts = {"m": 0, "f": 0}
    speakers = []
    for variant, pitch, accent, split, slow_fast in rows:
        prefix = "f" if variant in FEMALE else "m"
        counts[prefix] += 1
        rates = ((120, 240), (120, 130), (220, 240))[slow_fast]
        pitch_range, rate = _range_rate(rng, rates)
        speaker_id = f"{prefix}{counts[prefix]:03d}"
        speakers.append(
            Speaker(speaker_id, split, variant, pitch, pitch_range, rate, accent)
        )
    return speakers + [TTS_SPEAKER]
