"""Speaker-verification trial lists in VoxCeleb1's `label enrollment test` format.

Half target pairs (one speaker, two different utterances), half non-target pairs, as in
VoxCeleb1's veri_test.txt. Non-targets between speakers of one gender are the hard
ones (the VoxCeleb1-H list of Chung, Nagrani & Zisserman 2018, "VoxCeleb2",
arXiv:1806.05622, pairs only speakers of one nationality and gender), so
`same_gender` (default half) of them pair two speakers of one gender and the rest
two of different genders; rows without a `gender` field, or too few speakers of one
gender, fall back to any two speakers. No trial appears twice. Paths are written
relative to the trials file's folder (`write_trials`), so the list moves with its
audio; `absolute=True` writes them whole. A path cannot hold whitespace (the
format splits on it).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from minispeech.core.checkpoint import atomic_write


def group_by_speaker(rows: list[dict]) -> tuple[dict, dict]:
    """{speaker: [audio paths]} and {speaker: gender or None} of manifest rows."""
    by_speaker: dict[str, list[str]] = {}
    gender: dict[str, str | None] = {}
    for row in rows:
        name = str(row["speaker"])
        by_speaker.setdefault(name, []).append(row["audio_filepath"])
        gender.setdefault(name, row.get("gender"))
    return by_speaker, gender


def non_target_speakers(names: list[str], gender: dict, same: bool, rng) -> tuple:
    """Two different speakers: of one gender (`same`) or of two genders, when the
    speakers allow it; else any two."""
    groups: dict = {}
    for name in names:
        groups.setdefault(gender[name], []).append(name)
    known = {g: v for g, v in groups.items() if g is not None}
    if same and any(len(v) >= 2 for v in known.values()):
        group = rng.choice(sorted(g for g, v in known.items() if len(v) >= 2))
        return tuple(rng.sample(known[group], 2))
    if not same and len(known) >= 2:
        g1, g2 = rng.sample(sorted(known), 2)
        return rng.choice(known[g1]), rng.choice(known[g2])
    return tuple(rng.sample(names, 2))


def verification_trials(
    rows: list[dict], n_trials: int, seed: int, same_gender: float = 0.5
) -> list:
    """(label, enrollment path, test path) triples: n_trials // 2 target pairs (same
    speaker, two different utterances) and as many non-target pairs, a fraction
    `same_gender` of them between two speakers of one gender; shuffled."""
    rng = random.Random(seed)
    by_speaker, gender = group_by_speaker(rows)
    names = sorted(by_speaker)
    multi = [s for s in names if len(by_speaker[s]) >= 2]
    if len(names) < 2 or not multi:
        raise ValueError("trials need >= 2 speakers and one with >= 2 utterances")
    n_half = n_trials // 2
    n_same = round(n_half * same_gender)  # the hard non-targets: one gender
    trials: list = []
    seen: set = set()
    for k in range(2 * n_half):
        # 1) targets and non-targets alternate; a pair already drawn (in either
        #    order) is drawn again, up to 1000 times (a small corpus runs out)
        for _ in range(1000):
            if k % 2 == 0:
                label, (a, b) = 1, rng.sample(by_speaker[rng.choice(multi)], 2)
            else:
                s, t = non_target_speakers(names, gender, k // 2 < n_same, rng)
                label, a, b = 0, rng.choice(by_speaker[s]), rng.choice(by_speaker[t])
            if (a, b) not in seen and (b, a) not in seen:
                break
        else:
            raise ValueError(f"cannot draw {n_trials} different trials from the rows")
        seen.add((a, b))
        trials.append((label, a, b))
    rng.shuffle(trials)  # 2) VoxCeleb1's lists mix the two kinds
    return trials


def write_trials(path, trials: list, absolute: bool = False) -> Path:
    """One "label enrollment test" line per trial (VoxCeleb1 veri_test.txt style);
    paths relative to the file's folder unless `absolute`. Written atomically."""
    path = Path(path)
    folder = path.absolute().parent

    def name(audio: str) -> str:
        if any(c.isspace() for c in audio):  # the format splits lines on spaces
            raise ValueError(f"{audio}: a path in a trials file cannot hold spaces")
        audio = os.path.abspath(audio)
        return audio if absolute else os.path.relpath(audio, folder)

    lines = [f"{label} {name(a)} {name(b)}\n" for label, a, b in trials]
    return atomic_write(path, lambda file: file.write("".join(lines).encode()))
