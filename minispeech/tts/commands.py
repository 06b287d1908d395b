"""TTS verb of the `minispeech` command.

    minispeech synthesize MODEL --text "..." --out out.wav
                          [--vocoder griffin-lim|VOCODER_MODEL] [--pace 1.0]
    minispeech synthesize MODEL --manifest M --out DIR [...]

MODEL is a FastPitch model file (minispeech's or NeMo's `.nemo`); the vocoder is
Griffin-Lim (32 iterations, `--gl-iters`) unless a HiFi-GAN model file is given.
With `--manifest`, every line's `text` is spoken into DIR/<name>.wav (<name> is the
line's audio file name, else its line number) and DIR/synthesized.jsonl lists them
as a manifest (`audio_filepath`, `text`, `duration`, and the predicted word timings
as `words`), so `minispeech evaluate ASR_MODEL DIR/synthesized.jsonl` measures how
intelligible the speech is. Every text is checked (characters the tokenizer lacks,
with their position; empty text; too long for the model) before any audio is made,
and files are written only once everything has been synthesized; a wave whose peak
passes full scale is scaled down to peak 0.99 (with a note), not clipped.
"""

from __future__ import annotations

import time
from pathlib import Path

from minispeech.command_line import (
    ArgumentParser,
    CommandError,
    load_model,
    write_wave,
)


def synthesize_verb(argv: list[str]) -> int:
    """Speak a text (or each line of a manifest) into WAV files."""
    parser = ArgumentParser(
        prog="minispeech synthesize",
        description="text to speech with a FastPitch model and a vocoder",
    )
    parser.add_argument("model", help="FastPitch model file")
    parser.add_argument("--text", help="the text to speak")
    parser.add_argument("--manifest", help="speak every line's text")
    parser.add_argument("--out", required=True, help="a .wav (--text) or a folder")
    parser.add_argument(
        "--vocoder", default="griffin-lim", help="griffin-lim or a HiFi-GAN model file"
    )
    parser.add_argument("--pace", type=float, default=1.0, help="> 1 speaks faster")
    parser.add_argument("--gl-iters", type=int, default=32)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    args = parser.parse_args(argv)
    if (args.text is None) == (args.manifest is None):
        parser.error("give exactly one of --text and --manifest")
    if not args.pace > 0:
        parser.error(f"argument --pace: must be > 0, got {args.pace}")
    jobs = text_jobs(args)
    synth = build_synthesizer(args)
    for _, text, where in jobs:  # every text checked before any audio is made
        check_text(synth.acoustic, text, where)
    start = time.perf_counter()
    results = [(name, text, synth(text, args.pace)) for name, text, _ in jobs]
    elapsed = time.perf_counter() - start
    seconds = write_results(args, results)
    speed = seconds / max(elapsed, 1e-9)
    print(
        f"wrote {len(results)} file(s) ({seconds:.1f} s of audio in {elapsed:.1f} s, "
        f"{speed:.0f}x real time)"
    )
    return 0


def text_jobs(args) -> list[tuple[str, str, str]]:
    """[(output name, text, where it came from)]."""
    if args.text is not None:
        if not args.out.endswith(".wav"):
            raise CommandError(f"--out {args.out}: with --text, give a .wav file")
        return [(Path(args.out).stem, args.text, "--text")]
    from minispeech.data.manifest import read_numbered_manifest

    jobs, names = [], {}
    rows = read_numbered_manifest(args.manifest, ("text",), check_audio=False)
    for line, row in rows:
        audio = row.get("audio_filepath")
        name = Path(audio).stem if isinstance(audio, str) else f"line{line:05d}"
        if name in names:
            raise CommandError(
                f"{args.manifest}:{line}: output name {name}.wav is also line "
                f"{names[name]}'s"
            )
        names[name] = line
        jobs.append((name, str(row["text"]), f"{args.manifest}:{line}"))
    return jobs


def build_synthesizer(args):
    from minispeech.tts.synthesis import GRIFFIN_LIM, Synthesizer

    acoustic = load_model(args.model, args.device)
    if not callable(getattr(acoustic, "generate_spectrogram", None)):
        raise CommandError(
            f"{args.model}: holds a {type(acoustic).__name__}, not a FastPitch model"
        )
    vocoder = args.vocoder
    if vocoder != GRIFFIN_LIM:
        if not Path(vocoder).is_file():
            raise CommandError(f"--vocoder {vocoder}: no such file (or griffin-lim)")
        vocoder = load_model(vocoder, args.device)
        if not callable(getattr(vocoder, "convert_spectrogram_to_audio", None)):
            raise CommandError(
                f"--vocoder {args.vocoder}: holds a {type(vocoder).__name__}, not "
                "a vocoder"
            )
    try:
        return Synthesizer(acoustic, vocoder, gl_iters=args.gl_iters)
    except ValueError as error:
        raise CommandError(str(error)) from None


def check_text(acoustic, text: str, where: str) -> None:
    """The model can speak `text`; otherwise a CommandError naming `where`."""
    try:
        acoustic.parse(text)
    except ValueError as error:
        raise CommandError(f"{where}: {error}") from None


def write_results(args, results: list) -> float:
    """Write the WAVs (and the manifest); the total seconds of audio."""
    from minispeech.data.manifest import write_manifest

    if args.text is not None:
        _, _, synthesis = results[0]
        write_wave(args.out, synthesis.wave, synthesis.sample_rate)
        return synthesis.wave.numel() / synthesis.sample_rate
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, seconds = [], 0.0
    for name, text, synthesis in results:
        write_wave(out_dir / f"{name}.wav", synthesis.wave, synthesis.sample_rate)
        duration = synthesis.wave.numel() / synthesis.sample_rate
        seconds += duration
        words = [[w, round(s, 3), round(e, 3)] for w, s, e in synthesis.words]
        rows.append(
            {
                "audio_filepath": f"{name}.wav",
                "text": text,
                "duration": duration,
                "words": words,
            }
        )
    write_manifest(out_dir / "synthesized.jsonl", rows)
    return seconds


# ---------------------------------------------------------------- corpus reordered
def reordered_verb(argv: list[str]) -> int:
    """Speak a manifest's texts in new word orders with the corpus's TTS voice."""
    parser = ArgumentParser(
        prog="minispeech corpus reordered",
        description="the texts of MANIFEST with their words shuffled (a new order "
        "each), spoken by espeak-ng's TTS voice: Opus files and reordered.jsonl "
        "with word timings (needs espeakng-loader)",
    )
    parser.add_argument("manifest")
    parser.add_argument("--out", required=True, help="folder for audio/ and the jsonl")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    import random

    from minispeech.data.corpus import write_utterance
    from minispeech.data.corpus_speakers import TTS_SPEAKER
    from minispeech.data.manifest import read_manifest, write_manifest

    rng = random.Random(args.seed)
    texts = [shuffled_words(str(r["text"]), rng) for r in read_manifest(args.manifest)]
    out = Path(args.out)
    rows = [
        write_utterance(out, TTS_SPEAKER, f"reordered_{k:04d}", text, kind="free")
        for k, text in enumerate(texts)
    ]
    path = write_manifest(out / "reordered.jsonl", rows)
    print(f"wrote {path} ({len(rows)} utterances)")
    return 0


def shuffled_words(text: str, rng) -> str:
    """The words of `text` in a random order different from the original (when
    there are two different words)."""
    words = text.split()
    if len(set(words)) < 2:
        return text
    order = words[:]
    while order == words:
        rng.shuffle(order)
    return " ".join(order)
