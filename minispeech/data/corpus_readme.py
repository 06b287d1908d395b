"""Write data/tinyspeech/README.md from what `build_corpus` actually produced."""

import json
from pathlib import Path

import soundfile as sf

from minispeech.data import corpus_text
from minispeech.data.espeak import get_engine


def _stats(rows: list[dict]) -> str:
    seconds = sum(r["duration"] for r in rows)
    speakers = sorted({r["speaker"] for r in rows})
    durs = [r["duration"] for r in rows]
    return (
        f"{len(rows)} | {seconds / 3600:.3f} h ({seconds / 60:.1f} min) | "
        f"{min(durs):.2f} / {seconds / len(rows):.2f} / {max(durs):.2f} | "
        f"{len(speakers)}"
    )


def _example(row: dict) -> str:
    """A manifest line, its word list cut after two words, wrapped for reading."""
    short = json.dumps({**row, "words": row["words"][:2]})
    short = short.replace("]]}", "], ...]}")
    for key in ("text", "text_pnc", "speaker", "words"):
        short = short.replace(f', "{key}"', f',\n     "{key}"')
    return short


def _speaker_table(splits: dict, speakers: list) -> list[str]:
    train_variants = {s.variant for s in speakers if s.split == "train"}
    lines = [
        "| speaker | split | gender | accent | espeak-ng voice | pitch (-p) | range "
        "| rate (-s) | variant in train? | utterances |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    counts: dict[str, int] = {}
    for rows in splits.values():
        for r in rows:
            counts[r["speaker"]] = counts.get(r["speaker"], 0) + 1
    for s in speakers:
        seen = "yes" if s.variant in train_variants else "**unseen**"
        seen = "-" if s.split in ("train", "tts") else seen
        lines.append(
            f"| {s.id} | {s.split} | {s.gender} | {s.accent} | `{s.voice.name}` | "
            f"{s.pitch} | "
            f"{s.range} | {s.rate} | {seen} | {counts.get(s.id, 0)} |"
        )
    return lines


def _split_summary(splits: dict, speakers: list) -> list[str]:
    """Per split: speakers (female/male), accents, variants, pitches, rates, kinds."""
    lines = [
        "| split | speakers (f/m) | accents | variants | pitch | rate (wpm) "
        "| free-order share |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ("train", "dev", "test", "far"):
        group = [s for s in speakers if s.split == name]
        rows = splits.get(name, [])
        if not group or not rows:
            continue
        n_female = sum(s.gender == "female" for s in group)
        accents = ", ".join(sorted({s.accent for s in group}))
        free = sum(r["kind"] == "free" for r in rows) / len(rows)
        lines.append(
            f"| {name} | {len(group)} ({n_female}/{len(group) - n_female}) | "
            f"{accents} | {len({s.variant for s in group})} | "
            f"{min(s.pitch for s in group)}-{max(s.pitch for s in group)} | "
            f"{min(s.rate for s in group)}-{max(s.rate for s in group)} | "
            f"{free:.0%} |"
        )
    return lines


def _far_conditions(rows: list[dict]) -> list[str]:
    lines = ["| noise | SNR (dB) | utterances |", "|---|---|---|"]
    counts: dict = {}
    for r in rows:
        key = (r["noise"], r["snr_db"])
        counts[key] = counts.get(key, 0) + 1
    for (noise, snr), n in counts.items():
        lines.append(f"| {noise} | {'-' if snr is None else f'{snr:g}'} | {n} |")
    return lines


def _templates() -> list[str]:
    rng = __import__("random").Random(1)
    lines = ["| template | example |", "|---|---|"]
    for name in sorted(corpus_text.TEMPLATES):
        lines.append(f"| {name} | {corpus_text.TEMPLATES[name](rng)} |")
    return lines


def write_readme(out_dir: Path, splits: dict, speakers: list, command: str,
                 seconds: float) -> Path:  # fmt: skip
    """Describe the corpus in `out_dir`/README.md; returns the path."""
    size = sum(p.stat().st_size for p in out_dir.rglob("*") if p.is_file())
    all_rows = [r for rows in splits.values() for r in rows]
    words = corpus_text.vocabulary()
    used = {w for r in all_rows for w in r["text"].split()}
    text = TEMPLATE.format(
        version=get_engine().version,
        libsndfile=sf.__libsndfile_version__,
        command=command,
        build_seconds=f"{seconds:.0f}",
        size_mb=f"{size / 1e6:.1f}",
        hours=f"{sum(r['duration'] for r in all_rows) / 3600:.2f}",
        n_utts=len(all_rows),
        split_table="\n".join(
            f"| {name}.jsonl | {_stats(rows)} |" for name, rows in splits.items()
        ),
        speaker_table="\n".join(_speaker_table(splits, speakers)),
        split_summary="\n".join(_split_summary(splits, speakers)),
        far_table="\n".join(_far_conditions(splits.get("far", []))),
        n_asr=len(
            {
                r["speaker"]
                for n in ("train", "dev", "test", "far")
                for r in splits.get(n, [])
            }
        ),  # fmt: skip
        free_example=next(
            (r["text"] for r in splits["train"] if r["kind"] == "free"), ""
        ),
        n_words=len(words),
        n_used=len(used & set(words)),
        vocabulary=" ".join(words),
        template_table="\n".join(_templates()),
        n_templates=len(corpus_text.TEMPLATES),
        example=_example(splits["train"][0]),
    )
    path = out_dir / "README.md"
    path.write_text(text)
    return path


TEMPLATE = """# tinyspeech: the bundled speech corpus

Synthetic English speech from the espeak-ng formant synthesizer: {n_utts} utterances,
{hours} hours, {size_mb} MB, {n_asr} ASR speakers plus one TTS voice, a closed
vocabulary of {n_words} words. A fresh clone trains on it with no download. This file
is written by the generator itself.

## How it was built
- Engine: libespeak-ng **{version}** from the PyPI package `espeakng-loader` (ctypes,
  synchronous mode, word events), 22050 Hz PCM16; resampled to 16 kHz with
  `minispeech.audio.resample`; encoded by libsndfile {libsndfile} (Ogg Opus).
- Command (from the repository root, {build_seconds} s on this machine):

      pip install espeakng-loader   # only needed to rebuild
      nice {command} --jobs 2

- Deterministic for a given engine, libopus and torch version: the same seed gives the
  same texts and the same file bytes. Another espeak-ng version gives the same texts
  and durations within a few ms but different samples, so never compare audio hashes
  across engine versions.

## Contents
| manifest | utterances | hours | duration min / mean / max (s) | speakers |
|---|---|---|---|---|
{split_table}

Every manifest line is a NeMo-style JSON object; `audio_filepath` is relative to the
manifest's folder:

    {example}

- `duration` is the file's exact frame count / 16000.
- `text_pnc`: the written form of `text`, with capitals, punctuation and numerals
  ("call bob at seven thirty" -> "Call Bob at 7:30.", "my number is five two seven"
  -> "My number is 5 2 7."), a function of `text` alone, also for free word order
  (rules: `minispeech/data/written_form.py`).
- `accent`: the espeak-ng accent (language voice) the speaker reads with.
- `kind`: `template` (a template sentence) or `free` (free word order), so results can
  be broken down per kind. The TTS rows are `template` (two joined).
- far.jsonl rows also have `noise` (`clean`, `white`, `pink` or `babble`) and `snr_db`
  (null for clean).
- `words`: [word, start, end] in seconds of the (trimmed) file, one per word of `text`,
  in order, with 0 <= start <= end <= duration.
- No sentence is spoken twice in train/dev/test/far together (so no test sentence is
  in train); the TTS texts are unique within the TTS set.

## Speakers
A speaker is an espeak-ng voice variant (formant scaling, voicing, breathiness and
spectral tilt: the timbre) together with a base pitch (`-p`), a pitch range, a speaking
rate (`-s`) and an accent. The accent changes pronunciation, not the voice (a
speaker-ID experiment on accent x variant confused accents of the same variant), so
identity is variant + pitch: two speakers of one variant are at least 16 pitch steps
apart (`minispeech/data/corpus_speakers.py`). Voiced variants only: whisper, whisperf,
caleb (unvoiced), croak, grandpa, grandma (half-voiced) and a few effect voices are
left out; near-identical variants (klatt..klatt6, robosoft3/4/5/7, iven..iven4) are
distinct variants but similar timbres.

- Train: variants at pitches from the grid 10, 26, 42, 58, 74, 90 (each variant on one
  half of it, up to three pitches), ranges 20-80, rates 120-240 wpm, five accents.
- Dev and test: never in train. About half use a variant no training speaker uses
  ("unseen"); the others use a training variant at a pitch of the other half of the
  grid (>= 16 steps from every training speaker of that variant). Half of them speak
  en-GB-x-rp, an accent no training speaker has.
- Far: variants used nowhere else, each at an extreme low pitch (<= 15) and an extreme
  high one (>= 85), rates ~120-130 or ~220-240 wpm, accents used in no other split.
- TTS: one voice (`tts01`, variant Lee) that no ASR speaker uses.

{split_summary}

## The far split
Conditions (`minispeech/data/corpus_far.py`): a third clean, the rest with white,
pink (1/f) or babble (4 other far utterances) noise at 10 and 20 dB SNR, scaled
exactly over the whole utterance (`minispeech.audio.noise.scale_to_snr`; speech and
noise are scaled down together where the mix would clip). Word timings are those of
the clean speech.

{far_table}

{speaker_table}

## Text
Lowercase, words separated by single spaces, numbers spelled out ("twenty seven"),
digit strings read digit by digit ("three five nine"), no punctuation except the
apostrophe inside a word ("o'clock", "it's", "don't", "let's"). Every text uses only
the 28 symbols space, a-z and `'` (NeMo's English character vocabulary).

Two kinds of sentences (`minispeech/data/corpus_text.py`): template sentences
(`"kind": "template"`, from {n_templates} templates over word lists, below) and free
word order (`"kind": "free"`: as many words as a template sentence has, each drawn
uniformly from the vocabulary, e.g. "{free_example}"). The free-order share per split
is in the table under Speakers. TTS texts join two template sentences with "and" or
"then". Vocabulary ({n_words} words, {n_used} of them used in this build):

{vocabulary}

{template_table}

## Word timings
espeak-ng's synthesis callback reports a WORD event with the character position and
the output sample where each word starts. A word ends where the next one starts, pulled
back over silent 10 ms frames (45 dB below the loudest frame); the last word ends at the
end of the speech. espeak-ng merges some clitics into a neighbour ("of a", "on the",
the "s" of "it's") and gives them no event: an event-less word shares the interval of
the preceding evented word, split in proportion to the letter counts. These timings are
good to about a phoneme; they are not a forced alignment.

## Format: Ogg Opus, measured
Silence before and after the speech is trimmed (frames 45 dB below the loudest, with a
30 ms margin). Measured on 40 utterances of this corpus (16 kHz mono; log-mel: 80 mels,
32 ms windows, 10 ms hop, natural log of power + 1e-5; mean absolute difference to the
uncompressed wave's):

| format | bitrate | log-mel L1 error vs the 16-bit original |
|---|---|---|
| FLAC 16-bit | 165 kbit/s | 0.001 |
| FLAC 8-bit | 54 kbit/s | 0.36 |
| Ogg Vorbis (libsndfile default) | 58 kbit/s | 0.20 |
| Ogg Opus (libsndfile default) | 31 kbit/s | 0.24 |

Opus is better than 8-bit FLAC at about half its size, and the whole of `data/` must
stay under 30 MB in git. libsndfile reports the exact frame count of these files
(tested: every manifest duration equals the header's frames / 16000) and seeks exactly.
libsndfile writes a random Ogg stream serial number into every file; the generator
rewrites it (a CRC of the utterance id) and fixes the page checksums, so rebuilds are
byte-identical.
"""
