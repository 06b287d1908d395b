"""Build the bundled tinyspeech corpus: espeak-ng speakers reading template sentences.

`build_corpus(out_dir, seed)` synthesizes every utterance with libespeak-ng (through
`espeak.py`), trims the silence around it, resamples 22050 -> 16000 Hz, writes Ogg Opus
files and NeMo-style JSONL manifests with word timings:

  train.jsonl / dev.jsonl / test.jsonl   ASR; dev and test speakers never occur in train
  tts_train.jsonl / tts_test.jsonl       one voice, longer phrases, for TTS
  README.md                              what is inside and how it was built (main)

Speakers: a speaker is an espeak-ng voice variant (which sets formants, voicing and
spectral tilt) with a base pitch, a pitch range and a speaking rate. Accents are not
used to make speakers: they change pronunciation, not the voice. Six of the ten
held-out (dev/test) speakers use a variant that no training speaker uses; the others use
a training variant at a pitch 20 steps away from both training pitches of that variant.

Usage: python -m minispeech.data.corpus build --out data/tinyspeech [--seed 0]
"""

import argparse
import multiprocessing
import random
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from minispeech.data.corpus_audio import align_words, encode_opus, speech_bounds
from minispeech.data.corpus_text import long_sentence, sentence
from minispeech.data.espeak import Voice, get_engine
from minispeech.data.manifest import write_manifest

SAMPLE_RATE = 16000
ACCENT = "gmw/en-US"


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker of the corpus."""

    id: str  # "m01".."m21", "f01".."f21", "tts01"
    split: str  # train, dev, test or tts
    variant: str  # espeak-ng voice variant (espeak-ng-data/voices/!v)
    pitch: int  # base pitch, 0-99 (-p)
    range: int  # pitch range, 0-99
    rate: int  # words per minute (-s)

    @property
    def gender(self) -> str:
        return "female" if self.id.startswith("f") else "male"

    @property
    def voice(self) -> Voice:
        return Voice(f"{ACCENT}+{self.variant}", self.rate, self.pitch, self.range)


# id, split, variant, pitch, range, rate. Training variants appear at pitches 25 and 65;
# held-out speakers either use a variant unseen in training ("unseen" in the README) or
# a training variant at pitch 45.
_TABLE = """
# id  split variant pitch range rate
m01   train m1         25    50  165
m02   train m1         65    70  180
m03   train m2         25    60  175
m04   train m2         65    45  155
m05   train m3         25    70  185
m06   train m3         65    50  160
m07   train m4         25    45  170
m08   train m4         65    65  190
m09   train m6         25    55  150
m10   train m6         65    70  175
m11   train m7         25    65  180
m12   train m7         65    45  165
m13   train Andy       25    50  160
m14   train Andy       65    60  185
m15   train klatt3     25    70  170
m16   train klatt3     65    50  155
m17   dev   victor     40    60  170
m18   dev   m2         45    55  180
m19   test  m8         45    60  175
m20   test  michel     40    50  165
m21   test  m3         45    60  170
f01   train f1         25    60  170
f02   train f1         65    45  185
f03   train f2         25    70  160
f04   train f2         65    50  175
f05   train f3         25    50  190
f06   train f3         65    65  165
f07   train f5         25    45  180
f08   train f5         65    70  155
f09   train Annie      25    55  175
f10   train Annie      65    60  160
f11   train linda      25    65  185
f12   train linda      65    50  170
f13   train steph      25    70  165
f14   train steph      65    45  180
f15   train Andrea     25    60  175
f16   train Andrea     65    55  150
f17   dev   shelby     40    60  175
f18   dev   f2         45    55  170
f19   test  f4         45    60  180
f20   test  Alicia     40    50  165
f21   test  f1         45    55  175
tts01 tts   Lee        50    50  165
"""
SPEAKERS = [
    Speaker(f[0], f[1], f[2], int(f[3]), int(f[4]), int(f[5]))
    for f in (line.split() for line in _TABLE.splitlines())
    if f and not f[0].startswith("#")
]


@dataclass(frozen=True)
class CorpusSizes:
    """How much to synthesize; the defaults make the committed corpus."""

    train_per_speaker: int = 60  # 32 speakers -> 1,920 utterances
    heldout_per_speaker: int = 40  # 4 dev + 6 test speakers -> 160 + 240
    tts_train_seconds: float = 17 * 60.0  # at least 15 minutes of one voice
    tts_test_utterances: int = 30
    tts_chunk: int = 32  # TTS texts synthesized per round (the surplus is deleted)


def synthesize(text: str, speaker: Speaker, utt_id: str) -> tuple[np.ndarray, list]:
    """Speak `text`: trimmed 16 kHz float32 wave (S,), [[word, start, end], ...] (s)."""
    from minispeech.audio import resample

    syn = get_engine().synthesize(text, speaker.voice)
    native = syn.samples.astype(np.float32) / 32768.0  # (S_native,)
    first, end = speech_bounds(native, syn.sample_rate)
    if end - first <= 0:
        raise RuntimeError(f"{utt_id}: espeak-ng produced silence for {text!r}")
    words = align_words(text, syn.words, native, (first, end), syn.sample_rate)
    wave = resample(torch.from_numpy(native[first:end]), syn.sample_rate, SAMPLE_RATE)
    duration = len(wave) / SAMPLE_RATE

    def seconds(sample: int) -> float:  # native sample -> seconds in the trimmed file
        return round(min(duration, (sample - first) / syn.sample_rate), 3)

    timings = [[w, seconds(a), seconds(b)] for w, a, b in words]
    return wave.numpy(), timings


def write_utterance(out_dir: Path, speaker: Speaker, utt_id: str, text: str) -> dict:
    """Synthesize one utterance, write its Opus file, return its manifest row."""
    wave, words = synthesize(text, speaker, utt_id)
    relative = f"audio/{speaker.id}/{utt_id}.opus"
    path = out_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_opus(wave, SAMPLE_RATE, serial=zlib.crc32(utt_id.encode())))
    return {
        "audio_filepath": relative,
        "duration": len(wave) / SAMPLE_RATE,
        "text": text,
        "speaker": speaker.id,
        "gender": speaker.gender,
        "words": words,
    }


def _new_sentence(rng: random.Random, used: set, draw=sentence) -> str:
    """A sentence never drawn before in this corpus (no text is spoken twice)."""
    while True:
        text = draw(rng)
        if text not in used:
            used.add(text)
            return text


def _plan_asr(speakers: list[Speaker], sizes: CorpusSizes, rng, used: set) -> dict:
    """{split: [(speaker, utt_id, text), ...]} for the ASR splits, drawn in order."""
    plan: dict[str, list] = {"train": [], "dev": [], "test": []}
    for speaker in speakers:
        if speaker.split not in plan:
            continue
        heldout = speaker.split != "train"
        count = sizes.heldout_per_speaker if heldout else sizes.train_per_speaker
        for i in range(count):
            text = _new_sentence(rng, used)
            plan[speaker.split].append((speaker, f"{speaker.id}_{i:03d}", text))
    return plan


def _tts_rows(out_dir: Path, speaker: Speaker, rng, sizes, pool) -> tuple[list, list]:
    """TTS train rows until `tts_train_seconds` are reached, then the test rows.

    Texts are synthesized in chunks; utterances past the test set are deleted."""
    train, test, used, chunk = [], [], set(), sizes.tts_chunk
    while len(test) < sizes.tts_test_utterances:
        start = len(train) + len(test)
        texts = [_new_sentence(rng, used, long_sentence) for _ in range(chunk)]
        ids = [f"{speaker.id}_{start + i:04d}" for i in range(chunk)]
        plan = [(speaker, utt_id, text) for utt_id, text in zip(ids, texts)]
        for row in _run(out_dir, plan, pool):
            seconds = sum(r["duration"] for r in train)
            if seconds < sizes.tts_train_seconds:
                train.append(row)
            elif len(test) < sizes.tts_test_utterances:
                test.append(row)
            else:
                (out_dir / row["audio_filepath"]).unlink()
    return train, test


def _write_task(task) -> dict:
    out_dir, speaker, utt_id, text = task
    return write_utterance(out_dir, speaker, utt_id, text)


def _run(out_dir: Path, plan: list, pool) -> list[dict]:
    """Synthesize every (speaker, utt_id, text) of `plan`, rows in plan order."""
    tasks = [(out_dir, speaker, utt_id, text) for speaker, utt_id, text in plan]
    if pool is None:
        return [_write_task(t) for t in tasks]
    return list(pool.imap(_write_task, tasks, chunksize=8))


def build_corpus(
    out_dir,
    seed: int = 0,
    sizes: CorpusSizes = CorpusSizes(),
    speakers: list[Speaker] | None = None,
    jobs: int = 1,
) -> dict:
    """Synthesize the corpus into `out_dir`; returns {manifest name: rows}.

    Deterministic for a given espeak-ng, libopus and torch version: the same seed gives
    the same texts, audio and bytes, whatever `jobs` (worker processes) is.
    """
    out_dir = Path(out_dir)
    if (out_dir / "audio").is_dir() and any((out_dir / "audio").iterdir()):
        raise FileExistsError(f"{out_dir / 'audio'} is not empty: remove it first")
    out_dir.mkdir(parents=True, exist_ok=True)
    speakers = SPEAKERS if speakers is None else speakers
    rng, used = random.Random(seed), set()
    plan = _plan_asr(speakers, sizes, rng, used)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same float sums on every machine, workers included
    pool = multiprocessing.get_context("fork").Pool(jobs) if jobs > 1 else None
    try:
        splits = {name: _run(out_dir, rows, pool) for name, rows in plan.items()}
        tts = [s for s in speakers if s.split == "tts"]
        if tts:
            tts_rows = _tts_rows(out_dir, tts[0], rng, sizes, pool)
            splits["tts_train"], splits["tts_test"] = tts_rows
    finally:
        torch.set_num_threads(threads)
        if pool is not None:
            pool.close()
            pool.join()
    for name, rows in splits.items():
        write_manifest(out_dir / f"{name}.jsonl", rows)  # paths stay relative
    return splits


def main(argv: list[str] | None = None) -> int:
    """`python -m minispeech.data.corpus build --out DIR [--seed N]`."""
    parser = argparse.ArgumentParser(prog="python -m minispeech.data.corpus")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="synthesize the tinyspeech corpus")
    build.add_argument("--out", required=True, help="e.g. data/tinyspeech")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--jobs", type=int, default=1, help="worker processes")
    args = parser.parse_args(argv)
    from minispeech.data.corpus_readme import write_readme

    start = time.time()
    splits = build_corpus(args.out, seed=args.seed, jobs=args.jobs)
    elapsed = time.time() - start
    command = "python -m minispeech.data.corpus build"
    command += f" --out {args.out} --seed {args.seed}"
    write_readme(Path(args.out), splits, SPEAKERS, command, elapsed)
    total = sum(len(rows) for rows in splits.values())
    print(f"wrote {total} utterances to {args.out} in {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
