"""Speaker-verification trial lists in VoxCeleb1's `label enrollment test` format.

Half target pairs (one speaker, two different utterances), half non-target pairs, as in
VoxCeleb1's veri_test.txt.
"""

import random
from pathlib import Path


def verification_trials(rows: list[dict], n_trials: int, seed: int) -> list:
    """(label, enrollment path, test path) triples: n_trials // 2 target pairs (same
    speaker, two different utterances) and as many non-target pairs, shuffled."""
    rng = random.Random(seed)
    by_speaker: dict[str, list[str]] = {}
    for row in rows:
        by_speaker.setdefault(row["speaker"], []).append(row["audio_filepath"])
    names = sorted(s for s in by_speaker)
    if len(names) < 2 or max(len(v) for v in by_speaker.values()) < 2:
        raise ValueError("trials need >= 2 speakers and one with >= 2 utterances")
    multi = [s for s in names if len(by_speaker[s]) >= 2]
    trials = []
    for _ in range(n_trials // 2):
        a, b = rng.sample(by_speaker[rng.choice(multi)], 2)
        trials.append((1, a, b))
        s, t = rng.sample(names, 2)
        trials.append((0, rng.choice(by_speaker[s]), rng.choice(by_speaker[t])))
    rng.shuffle(trials)
    return trials


def write_trials(path, trials: list) -> None:
    """One "label enrollment test" line per trial (VoxCeleb1 veri_test.txt style)."""
    Path(path).write_text("".join(f"{label} {a} {b}\n" for label, a, b in trials))
