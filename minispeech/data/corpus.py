"""Build the bundled tinyspeech corpus: espeak-ng speakers reading a closed vocabulary.

`build_corpus(out_dir, seed)` synthesizes every utterance with libespeak-ng (through
`espeak.py`), trims the silence around it, resamples 22050 -> 16000 Hz, writes Ogg Opus
files and NeMo-style JSONL manifests with word timings and the written form of the
text (`text_pnc`, `written_form.py`):

  train.jsonl / dev.jsonl / test.jsonl   ASR; dev and test speakers never occur in train
  far.jsonl                              far from train: extreme pitch and rate, accents
                                         no other split uses, two thirds with noise
  tts_train.jsonl / tts_test.jsonl       one voice, longer phrases, for TTS
  README.md                              what is inside and how it was built (main)

Speakers (`corpus_speakers.py`): an espeak-ng voice variant (formants, voicing, tilt)
with a base pitch, a pitch range, a speaking rate and an accent. Text
(`corpus_text.py`): template sentences ("kind": "template") and random sequences of
vocabulary words ("kind": "free"). Noise of the far split: `corpus_far.py`.

Usage: python -m minispeech.data.corpus build --out data/tinyspeech [--seed 0] [--help]
"""

import argparse
import multiprocessing
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from minispeech.data.corpus_audio import (
    SAMPLE_RATE,
    align_words,
    manifest_row,
    speech_bounds,
    write_opus,
)
from minispeech.data.corpus_speakers import (
    ACCENT_VOICES,
    TRAIN_ACCENTS,
    Speaker,
    make_speakers,
)
from minispeech.data.corpus_text import free_sentence, long_sentence, sentence
from minispeech.data.espeak import get_engine
from minispeech.data.manifest import write_manifest

SPEAKERS = make_speakers()  # the bundled corpus's speakers (seed 0, 120 in train)
ASR_SPLITS = ("train", "dev", "test", "far")


@dataclass(frozen=True)
class CorpusSizes:
    """How much to synthesize; the defaults make the committed corpus."""

    train_speakers: int = 120  # at most 3 per training variant (240)
    train_per_speaker: int = 16  # 120 x 16 = 1,920 utterances, ~1 h at ~1.8 s each
    heldout_per_speaker: int = 25  # 8 dev + 10 test speakers -> 200 + 250
    far_per_speaker: int = 25  # 10 far speakers -> 250
    free_fraction: float = 0.3  # share of free-order sentences in train
    heldout_free_fraction: float = 0.5  # ... in dev, test and far
    tts_train_seconds: float = 17 * 60.0  # at least 15 minutes of one voice
    tts_test_utterances: int = 30
    tts_chunk: int = 32  # TTS texts synthesized per round (the surplus is deleted)
    opus_level: float | None = None  # Opus compression level (None: ~30 kbps)


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


def write_utterance(out_dir: Path, speaker: Speaker, utt_id: str, text: str,
                    kind: str = "template", opus_level=None) -> dict:  # fmt: skip
    """Synthesize one utterance, write its Opus file, return its manifest row."""
    wave, words = synthesize(text, speaker, utt_id)
    relative = f"audio/{speaker.id}/{utt_id}.opus"
    write_opus(out_dir, relative, wave, utt_id, opus_level)
    return manifest_row(relative, wave, text, speaker, kind, words)


def _new_sentence(rng: random.Random, used: set, draw=sentence) -> str:
    """A sentence never drawn before in this corpus (no text is spoken twice)."""
    while True:
        text = draw(rng)
        if text not in used:
            used.add(text)
            return text


def _kinds(count: int, fraction: float, rng: random.Random) -> list[str]:
    """`count` kinds, round(count * fraction) of them "free", in random order."""
    n_free = round(count * fraction)
    kinds = ["free"] * n_free + ["template"] * (count - n_free)
    rng.shuffle(kinds)
    return kinds


def _plan_asr(speakers: list[Speaker], sizes: CorpusSizes, rng, used: set) -> dict:
    """{split: [(speaker, utt_id, text, kind), ...]} for the ASR splits, in order."""
    plan: dict[str, list] = {name: [] for name in ASR_SPLITS}
    counts = {"train": sizes.train_per_speaker, "far": sizes.far_per_speaker}
    for speaker in speakers:
        if speaker.split not in plan:
            continue
        count = counts.get(speaker.split, sizes.heldout_per_speaker)
        fraction = sizes.free_fraction
        if speaker.split != "train":
            fraction = sizes.heldout_free_fraction
        for i, kind in enumerate(_kinds(count, fraction, rng)):
            draw = free_sentence if kind == "free" else sentence
            text = _new_sentence(rng, used, draw)
            plan[speaker.split].append((speaker, f"{speaker.id}_{i:03d}", text, kind))
    return plan


def _tts_rows(out_dir: Path, speaker: Speaker, rng, sizes, pool) -> tuple[list, list]:
    """TTS train rows until `tts_train_seconds` are reached, then the test rows.

    Texts are synthesized in chunks; utterances past the test set are deleted."""
    train, test, used, chunk = [], [], set(), sizes.tts_chunk
    while len(test) < sizes.tts_test_utterances:
        start = len(train) + len(test)
        texts = [_new_sentence(rng, used, long_sentence) for _ in range(chunk)]
        ids = [f"{speaker.id}_{start + i:04d}" for i in range(chunk)]
        plan = [(speaker, utt_id, text, "template") for utt_id, text in zip(ids, texts)]
        for row in _run(out_dir, plan, pool, opus_level=sizes.opus_level):
            seconds = sum(r["duration"] for r in train)
            if seconds < sizes.tts_train_seconds:
                train.append(row)
            elif len(test) < sizes.tts_test_utterances:
                test.append(row)
            else:
                (out_dir / row["audio_filepath"]).unlink()
    return train, test


def _write_task(task) -> dict:
    return write_utterance(*task)


def _synth_task(task) -> tuple:
    _, speaker, utt_id, text, _, _ = task
    return synthesize(text, speaker, utt_id)


def _run(out_dir: Path, plan: list, pool, task=_write_task, opus_level=None) -> list:
    """Run `task` on every (speaker, utt_id, text, kind) of `plan`, in plan order."""
    tasks = [(out_dir, *item, opus_level) for item in plan]
    if pool is None:
        return [task(t) for t in tasks]
    return list(pool.imap(task, tasks, chunksize=8))


def build_corpus(
    out_dir,
    seed: int = 0,
    sizes: CorpusSizes = CorpusSizes(),
    speakers: list[Speaker] | None = None,
    jobs: int = 1,
) -> dict:
    """Synthesize the corpus into `out_dir`; returns {manifest name: rows}.

    `speakers` defaults to `make_speakers(sizes.train_speakers, seed)`. Deterministic
    for a given espeak-ng, libopus and torch version: the same seed gives the same
    texts, audio and bytes, whatever `jobs` (worker processes) is.
    """
    from minispeech.data.corpus_far import write_far

    out_dir = Path(out_dir)
    if (out_dir / "audio").is_dir() and any((out_dir / "audio").iterdir()):
        raise FileExistsError(f"{out_dir / 'audio'} is not empty: remove it first")
    out_dir.mkdir(parents=True, exist_ok=True)
    if speakers is None:
        speakers = make_speakers(sizes.train_speakers, seed)
    rng, used = random.Random(seed), set()
    plan = _plan_asr(speakers, sizes, rng, used)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same float sums on every machine, workers included
    pool = multiprocessing.get_context("fork").Pool(jobs) if jobs > 1 else None
    try:
        level = sizes.opus_level
        splits = {
            name: _run(out_dir, plan[name], pool, opus_level=level)
            for name in ASR_SPLITS[:3]
        }
        clean = _run(out_dir, plan["far"], pool, _synth_task)
        splits["far"] = write_far(out_dir, plan["far"], clean, seed, level)
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


_EPILOG = """\
knobs and sizes (defaults = the bundled corpus; an utterance is ~1.8 s):
  train hours ~= train-speakers x utts-per-speaker x 1.8 s / 3600
    (120 x 16 -> ~1 h, 240 x 40 -> ~4.8 h); dev 8, test 10, far 10 speakers x
    --heldout-utts / --far-utts; TTS: --tts-minutes of one voice (+ 30 test phrases).
  speakers: at most 240 training speakers (80 variants x 3 pitches), see
    minispeech/data/corpus_speakers.py; accents for train: --train-accents
    (dev/test add en-GB-x-rp, far uses en-US-nyc and en-GB-x-gbclan only).
  text: --free-fraction of train (and --heldout-free-fraction of dev/test/far) are
    free-order word sequences, the rest template sentences.
  size: ~14 MB per hour of speech at the default Opus level (~30 kbps), ~8.5 MB
    with --opus-level 0.97 (~18.5 kbps, the 4-8 kHz band kept); level 1.0 (~12
    kbps) drops most of 4-6 kHz.
example, a ~5 h corpus (~45 MB):
  python -m minispeech.data.corpus build --out data/big --train-speakers 240 \\
      --utts-per-speaker 40 --opus-level 0.97 --jobs 8
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m minispeech.data.corpus")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser(
        "build", help="synthesize the tinyspeech corpus", epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    d = CorpusSizes()
    build.add_argument("--out", required=True, help="e.g. data/tinyspeech")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--jobs", type=int, default=1, help="worker processes")
    add = build.add_argument
    add("--train-speakers", type=int, default=d.train_speakers, help="max 240")
    add("--utts-per-speaker", type=int, default=d.train_per_speaker, help="train")
    add("--heldout-utts", type=int, default=d.heldout_per_speaker, help="dev/test")
    add("--far-utts", type=int, default=d.far_per_speaker, help="per far speaker")
    add("--free-fraction", type=float, default=d.free_fraction)
    add("--heldout-free-fraction", type=float, default=d.heldout_free_fraction)
    add("--tts-minutes", type=float, default=d.tts_train_seconds / 60)
    add("--train-accents", default=",".join(TRAIN_ACCENTS), help="comma-separated")
    add("--opus-level", type=_level, default=d.opus_level,
        help="Opus compression level 0-1 (default: libsndfile's, ~30 kbps; 0.97: "
             "~18.5 kbps, 1.6x the hours in the same bytes)")  # fmt: skip
    return parser


def _level(text: str) -> float:
    """An Opus compression level: a number in [0, 1]."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def _command(args: argparse.Namespace) -> str:
    """The build command as the README shows it: --out, --seed and changed knobs."""
    command = (
        f"python -m minispeech.data.corpus build --out {args.out} --seed {args.seed}"
    )
    defaults = _parser().parse_args(["build", "--out", args.out])
    for key, value in vars(args).items():
        if key not in ("out", "seed", "jobs") and value != getattr(defaults, key):
            command += f" --{key.replace('_', '-')} {value}"
    return command


def main(argv: list[str] | None = None) -> int:
    """`python -m minispeech.data.corpus build --out DIR [--seed N] [knobs]`."""
    args = _parser().parse_args(argv)
    from minispeech.data.corpus_readme import write_readme

    sizes = CorpusSizes(
        train_speakers=args.train_speakers,
        train_per_speaker=args.utts_per_speaker,
        heldout_per_speaker=args.heldout_utts,
        far_per_speaker=args.far_utts,
        free_fraction=args.free_fraction,
        heldout_free_fraction=args.heldout_free_fraction,
        tts_train_seconds=args.tts_minutes * 60,
        opus_level=args.opus_level,
    )
    accents = tuple(args.train_accents.split(","))
    unknown = set(accents) - set(ACCENT_VOICES)
    if unknown:
        raise SystemExit(f"unknown accents {sorted(unknown)}: {list(ACCENT_VOICES)}")
    command = _command(args)
    speakers = make_speakers(sizes.train_speakers, args.seed, accents)
    start = time.time()
    splits = build_corpus(args.out, args.seed, sizes, speakers, jobs=args.jobs)
    elapsed = time.time() - start
    write_readme(Path(args.out), splits, speakers, command, elapsed)
    total = sum(len(rows) for rows in splits.values())
    print(f"wrote {total} utterances to {args.out} in {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
