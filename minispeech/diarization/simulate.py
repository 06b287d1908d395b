"""Simulated conversations: corpus utterances of 2-4 speakers placed turn by turn.

A small cousin of NeMo's multispeaker data simulator
(nemo/collections/asr/data/data_simulation.py; "Property-Aware Multi-Speaker Data
Simulation: A Probabilistic Modelling Technique for Synthetic Data Generation",
arXiv:2310.12371): whole silence-trimmed utterances
follow each other, no speaker twice in a row, with a gap drawn from an interval that
includes negative values (overlap). The exact extent of every turn is the reference,
written as RTTM (minispeech/diarization/rttm.py). Differs from NeMo's simulator: one
utterance per turn (no sentence assembly from word alignments), no room acoustics or
noise, and a mix that is rescaled only to stay inside [-1, 1].

`write_conversations` lays each one out as NeMo's diarization inference reads it: a
16 kHz WAV, an RTTM and one line of the diarization manifest
    {"audio_filepath", "offset": 0, "duration", "label": "infer", "text": "-",
     "num_speakers", "rttm_filepath", "uem_filepath": null}
(the example line of NeMo's examples/speaker_tasks/diarization/conf/inference/
diar_infer_telephonic.yaml).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np

from minispeech.audio.io import load_audio, save_audio
from minispeech.core.checkpoint import atomic_write
from minispeech.data.manifest import ManifestError, write_manifest
from minispeech.diarization.rttm import RTTMError, Segment, read_rttm, rttm_lines


def turn_starts(durations: list[float], gaps: list[float]) -> list[float]:
    """Where each turn starts (seconds): after the latest end so far plus its gap
    (gaps[0] is unused); a negative gap overlaps the previous turn, never by more
    than half of it, and a turn never starts before the previous one."""
    starts, end = [], 0.0  # end: where the latest turn so far stops
    for k, duration in enumerate(durations):
        start = 0.0
        if k > 0:
            gap = max(gaps[k], -durations[k - 1] / 2)
            start = max(starts[-1] + 1e-3, end + gap)
        starts.append(start)
        end = max(end, start + duration)
    return starts


def make_conversation(
    turns: list[tuple[np.ndarray, str]],
    rng: random.Random,
    gap_range=(-0.4, 0.8),
    sample_rate: int = 16000,
):
    """Place (wave, speaker) turns one after another with random gaps from
    `gap_range` (seconds; negative overlaps the previous turn).

    Returns the mixed wave (S,) and one Segment per turn (its exact extent)."""
    gaps = [rng.uniform(*gap_range) for _ in turns]
    return mix_turns(turns, gaps, sample_rate)


def mix_turns(turns: list[tuple[np.ndarray, str]], gaps: list[float], sample_rate):
    """The sum of the turns placed by turn_starts (S,), scaled down if it would
    clip, and their Segments."""
    durations = [len(wave) / sample_rate for wave, _ in turns]
    starts = [round(s * sample_rate) for s in turn_starts(durations, gaps)]
    mix = np.zeros(max(s + len(w) for s, (w, _) in zip(starts, turns)), np.float32)
    segments = []
    for start, (wave, speaker) in zip(starts, turns):
        mix[start : start + len(wave)] += wave
        segments.append(Segment(start / sample_rate, len(wave) / sample_rate, speaker))
    peak = float(np.abs(mix).max())
    return (mix * (0.99 / peak) if peak > 0.99 else mix), segments


def plan_conversation(by_speaker: dict, rng: random.Random, n_speakers, seconds, gaps):
    """(rows, gaps) of one conversation: k speakers in [n_speakers], each talking
    once before anyone repeats, then a random other speaker each turn, until the
    conversation reaches a length drawn from `seconds`; a turn that would end past
    seconds[1] is not added. None when the draw misses the range."""
    chosen = rng.sample(sorted(by_speaker), rng.randint(*n_speakers))
    pools = {s: [] for s in chosen}  # each speaker's utterances, unused first
    target = rng.uniform(*seconds)
    rows, drawn, durations = [], [], []
    while not durations or max(turn_ends(durations, drawn)) < target:
        first_round = len(rows) < len(chosen)
        others = [s for s in chosen if not rows or s != str(rows[-1]["speaker"])]
        others = others or chosen  # a one-speaker "conversation"
        speaker = chosen[len(rows)] if first_round else rng.choice(others)
        if not pools[speaker]:
            pools[speaker] = rng.sample(by_speaker[speaker], len(by_speaker[speaker]))
        row = pools[speaker].pop()
        gap = rng.uniform(*gaps)
        if max(turn_ends(durations + [row["duration"]], drawn + [gap])) > seconds[1]:
            break
        rows.append(row)
        drawn.append(gap)
        durations.append(row["duration"])
    end = max(turn_ends(durations, drawn)) if durations else 0.0
    if len(rows) < len(chosen) or end < seconds[0]:
        return None
    return rows, drawn


def turn_ends(durations: list[float], gaps: list[float]) -> list[float]:
    return [s + d for s, d in zip(turn_starts(durations, gaps), durations)]


def conversations(
    rows: list[dict],
    n_recordings: int,
    seed: int,
    n_speakers=(2, 4),
    seconds=(20.0, 50.0),
    gap_range=(-0.4, 0.8),
    sample_rate: int = 16000,
) -> list:
    """`n_recordings` conversations from `rows` (absolute `audio_filepath`,
    `duration`, `speaker`): list of (recording id, wave (S,), [Segment, ...]), each
    of n_speakers[0]..n_speakers[1] speakers and seconds[0]..seconds[1] long. No
    speaker talks twice in a row, so every overlap is between two speakers."""
    rng = random.Random(seed)
    by_speaker: dict[str, list[dict]] = {}
    for row in rows:
        by_speaker.setdefault(str(row["speaker"]), []).append(row)
    if len(by_speaker) < n_speakers[0]:
        raise ValueError(
            f"{len(by_speaker)} speakers, fewer than the {n_speakers[0]} a "
            "conversation needs"
        )
    n_speakers = (n_speakers[0], min(n_speakers[1], len(by_speaker)))
    out = []
    for r in range(n_recordings):
        for _ in range(100):  # redraw a plan that misses the length range
            plan = plan_conversation(by_speaker, rng, n_speakers, seconds, gap_range)
            if plan is not None:
                break
        else:
            raise ValueError(f"cannot fill {seconds[0]}-{seconds[1]} s with turns")
        chosen, gaps = plan
        turns = []
        for row in chosen:
            wave = load_audio(row["audio_filepath"], sample_rate)[0].numpy()  # (S,)
            turns.append((wave, str(row["speaker"])))
        wave, segments = mix_turns(turns, gaps, sample_rate)
        out.append((f"conv{r:03d}", wave, segments))
    return out


def write_conversations(
    out_dir, recordings: list, sample_rate: int = 16000, absolute: bool = False
) -> Path:
    """For each (id, wave, segments): out_dir/id.wav (PCM 16 bit), out_dir/id.rttm
    and a line of out_dir/manifest.jsonl (NeMo's diarization manifest); paths are
    relative to out_dir unless `absolute`. Returns the manifest's path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for rec, wave, segments in recordings:
        wav, rttm = out_dir / f"{rec}.wav", out_dir / f"{rec}.rttm"
        save_audio(wav, wave, sample_rate)
        text = "\n".join(rttm_lines(rec, segments)) + "\n"
        atomic_write(rttm, lambda file, text=text: file.write(text.encode()))
        rows.append(
            {
                "audio_filepath": str(wav.absolute()),
                "offset": 0,
                "duration": len(wave) / sample_rate,
                "label": "infer",
                "text": "-",
                "num_speakers": len({s.speaker for s in segments}),
                "rttm_filepath": str(rttm.absolute()) if absolute else rttm.name,
                "uem_filepath": None,
            }
        )
    relative = None if absolute else out_dir
    return write_manifest(out_dir / "manifest.jsonl", rows, relative_to=relative)


MANIFEST_FIELDS = {  # field: (accepted types, rule, what it must be); null is fine
    "offset": ((int, float), lambda v: v >= 0, "a number >= 0"),
    "duration": ((int, float), lambda v: v > 0, "a number > 0"),
    "num_speakers": ((int,), lambda v: v >= 1, "an integer >= 1"),
    "rttm_filepath": ((str,), lambda v: bool(v.strip()), "a path"),
}


def read_diarization_manifest(path) -> list[tuple[int, dict]]:
    """(line number, row) of each line of a NeMo diarization manifest, with
    audio_filepath and every field of MANIFEST_FIELDS (absent -> None, offset 0),
    relative paths resolved against the manifest's folder, and `reference`: every
    SPEAKER line of rttm_filepath (NeMo's rttm_to_labels ignores <file>), or None.
    The first bad line raises ManifestError `path:line: field: problem`."""
    try:
        lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ManifestError([f"{path}: cannot read: {error}"]) from None
    folder, rows = Path(path).absolute().parent, []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            row = manifest_row(line, f"{path}:{number}: ")
            for name in ("audio_filepath", "rttm_filepath"):
                row[name] = row[name] and str(folder / row[name])
            row["reference"] = reference(row["rttm_filepath"], f"{path}:{number}: ")
            rows.append((number, {**row, "offset": row["offset"] or 0.0}))
    if not rows:
        raise ManifestError([f"{path}: empty manifest (no recordings)"])
    return rows


def manifest_row(line: str, where: str) -> dict:
    """One manifest line, parsed and checked (read_diarization_manifest)."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        raise ManifestError([f"{where}not JSON ({error.msg})"]) from None
    if not isinstance(row, dict):
        raise ManifestError([f"{where}not a JSON object"])
    audio = row.get("audio_filepath")
    if not isinstance(audio, str) or not audio.strip():
        raise ManifestError([f"{where}audio_filepath: missing (a path is needed)"])
    for name, (types, rule, what) in MANIFEST_FIELDS.items():
        value = row.setdefault(name, None)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, types) or not rule(value):
            problem = f"{name}: must be {what} or null, got {json.dumps(value)}"
            raise ManifestError([f"{where}{problem}"])
    return row


def reference(rttm, where: str) -> list[Segment] | None:
    """Every turn of an RTTM file (None for no file)."""
    if rttm is None:
        return None
    try:
        recordings = read_rttm(rttm)
    except RTTMError as error:
        raise ManifestError([f"{where}rttm_filepath: {error}"]) from None
    return [segment for turns in recordings.values() for segment in turns]
