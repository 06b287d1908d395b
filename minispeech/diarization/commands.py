"""Diarization verbs of the `minispeech` command.

    minispeech der --ref REF.rttm... --hyp HYP.rttm... [--collar 0.25]
                   [--ignore-overlap] [--uem FILE.uem]
    minispeech diarize SPEAKER_MODEL AUDIO... [--manifest M] --out DIR
                   [--num-speakers N | --oracle-num-speakers] [--max-speakers 8]
                   [--vad energy|oracle|VAD_MODEL]
    minispeech corpus conversations MANIFEST --out DIR [--n 12] [--seed 0]
                   [--speakers 2-4] [--seconds 20-50] [--absolute]

`diarize` (minispeech/diarization/pipeline.py) writes DIR/<stem>.rttm per recording
(the audio's stem, NeMo's uniq_id) and prints the speakers found, the seconds of
speech and the time taken. --manifest is NeMo's diarization manifest
(simulate.read_diarization_manifest); num_speakers is used only with
--oracle-num-speakers, and every SPEAKER line of rttm_filepath is the reference (as
NeMo's rttm_to_labels reads it). Where there are references it also prints the
pooled DER (collar 0.25 s, overlap scored) and how often the count was exact.
`--vad oracle` takes the reference speech. No speech: an empty RTTM and a note.
Every input is checked, and every recording's speech found and windowed (so a count
above its segments is refused), before any embedding; RTTMs are written at the end.

`corpus conversations` writes DIR/convNNN.wav, DIR/convNNN.rttm and the diarization
manifest DIR/manifest.jsonl of simulated conversations (simulate.py).

`der` scores hypothesis RTTM files against reference RTTM files with NIST md-eval's
diarization error rate, as NeMo's `score_labels` does (minispeech/metrics/der.py).
Recordings are paired by the <file> field of the RTTM lines, not by file order, so
one RTTM may hold many recordings and the files may come in any order. It prints one
line per reference recording and one for all of them pooled (seconds summed): scored
speaker time, then miss, false alarm, confusion and DER as percentages of it.
`--collar` is md-eval's half-width (0.25: [b - 0.25, b + 0.25] around every reference
boundary b is not scored); `--ignore-overlap` (md-eval -1) leaves out where reference
speakers overlap. A reference recording with no hypothesis is all missed; a hypothesis
recording with no reference is not scored (both are named in a note).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from minispeech.command_line import (
    ArgumentParser,
    CommandError,
    load_model,
    load_speaker_model,
    positive_int,
)
from minispeech.diarization.rttm import Segment, read_rttm, read_uem, to_turns
from minispeech.metrics.der import DERResult, file_der, pool


def seconds_type(text: str) -> float:
    """argparse type of --collar: a number of seconds >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 seconds, got {value}")
    return value


def read_turns(paths: list[str]) -> dict[str, list[tuple[float, float, str]]]:
    """{recording: (start, end, speaker) turns} from RTTM files, merged."""
    turns: dict[str, list[tuple[float, float, str]]] = {}
    for path in paths:
        for recording, segments in read_rttm(path).items():
            turns.setdefault(recording, []).extend(to_turns(segments))
    return turns


def der_row(name: str, result: DERResult) -> str:
    rates = (result.miss, result.false_alarm, result.confusion, result.der)
    return f"{name:<24} {result.scored_s:>9.2f}" + "".join(
        f" {100 * rate:>9.2f}%" for rate in rates
    )


def der_verb(argv: list[str]) -> int:
    parser = ArgumentParser(
        prog="minispeech der",
        description="Diarization error rate (NIST md-eval, as NeMo scores it) of "
        "hypothesis RTTM files against reference RTTM files, per recording (paired "
        "by the RTTM <file> field) and pooled over recordings.",
    )
    parser.add_argument("--ref", nargs="+", required=True, help="reference RTTM files")
    parser.add_argument("--hyp", nargs="+", required=True, help="hypothesis RTTMs")
    parser.add_argument(
        "--collar",
        type=seconds_type,
        default=0.25,
        help="no-score half-width around reference boundaries, seconds (0.25)",
    )
    parser.add_argument(
        "--ignore-overlap",
        action="store_true",
        help="do not score where reference speakers overlap (md-eval -1)",
    )
    parser.add_argument("--uem", help="UEM file: regions to score, per recording")
    args = parser.parse_args(argv)
    refs, hyps = read_turns(args.ref), read_turns(args.hyp)
    if not refs:
        raise CommandError(f"--ref {' '.join(args.ref)}: no SPEAKER lines")
    uem = read_uem(args.uem) if args.uem else None
    if uem is not None and set(refs) - set(uem):
        missing = ", ".join(sorted(set(refs) - set(uem)))
        raise CommandError(f"--uem {args.uem}: no segments for recordings {missing}")
    results = {
        key: file_der(
            turns,
            hyps.get(key, []),
            collar=args.collar,
            ignore_overlap=args.ignore_overlap,
            uem=None if uem is None else uem[key],
        )
        for key, turns in sorted(refs.items())
    }
    print_table(results, args.collar, args.ignore_overlap)
    if set(refs) - set(hyps):
        names = ", ".join(sorted(set(refs) - set(hyps)))
        print(f"note: no hypothesis, all missed: {names}")
    if set(hyps) - set(refs):
        names = ", ".join(sorted(set(hyps) - set(refs)))
        print(f"note: no reference, not scored: {names}")
    return 0


def print_table(
    results: dict[str, DERResult], collar: float, ignore_overlap: bool
) -> None:
    """One line per recording, then the pooled line; rates in % of scored_s."""
    overlap = "ignored" if ignore_overlap else "scored"
    n_files = len(results)
    print(f"collar {collar:g} s (half-width), overlap {overlap}, {n_files} recordings")
    columns = ("miss", "false alarm", "confusion", "DER")
    print(f"{'recording':<24} {'scored_s':>9}" + "".join(f" {c:>10}" for c in columns))
    for key, result in results.items():
        print(der_row(key, result))
    print(der_row("pooled", pool(results)))


# ---------------------------------------------------------------- shared pieces
def check_folder(path: str) -> None:
    """An output folder must not be a file."""
    if Path(path).is_file():
        raise CommandError(f"--out {path}: is a file, not a folder")


def range_type(kind, lowest):
    """argparse type of `LO-HI` (or one value): kind values >= lowest, LO <= HI."""

    def parse(text: str):
        try:
            values = [kind(part) for part in text.split("-")]
        except ValueError:
            raise argparse.ArgumentTypeError(f"not LO-HI: {text!r}") from None
        if len(values) not in (1, 2) or min(values) < lowest or values[0] > values[-1]:
            raise argparse.ArgumentTypeError(f"need LO-HI with {lowest} <= LO <= HI")
        return values[0], values[-1]

    return parse


# ---------------------------------------------------------------- corpus conversations
def conversations_verb(argv: list[str]) -> int:
    """`corpus conversations`: simulated conversations of a manifest's speakers."""
    parser = ArgumentParser(
        prog="minispeech corpus conversations",
        description="Simulate conversations (utterances of 2-4 speakers, some "
        "overlapping) and write a WAV, an RTTM and a diarization manifest line each.",
    )
    parser.add_argument("manifest", help="JSONL manifest with a speaker field")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--n", type=positive_int, default=12, help="conversations")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speakers", type=range_type(int, 1), default=(2, 4))
    parser.add_argument("--seconds", type=range_type(float, 1.0), default=(20, 50))
    parser.add_argument("--absolute", action="store_true", help="absolute paths")
    args = parser.parse_args(argv)
    check_folder(args.out)
    from minispeech.data import ManifestError, read_manifest
    from minispeech.diarization.simulate import conversations, write_conversations

    required = ("audio_filepath", "duration", "speaker")
    try:
        rows = read_manifest(args.manifest, required=required)
        recordings = conversations(rows, args.n, args.seed, args.speakers, args.seconds)
    except ManifestError as error:  # the first problem: one line
        raise CommandError(error.problems[0]) from None
    except ValueError as error:
        raise CommandError(f"{args.manifest}: {error}") from None
    manifest = write_conversations(args.out, recordings, absolute=args.absolute)
    minutes = sum(len(wave) for _, wave, _ in recordings) / 16000 / 60
    print(f"{len(recordings)} conversations, {minutes:.1f} min -> {manifest}")
    return 0


# ---------------------------------------------------------------- diarize
def diarize_verb(argv: list[str]) -> int:
    args = diarize_parser().parse_args(argv)
    if not args.audio and not args.manifest:
        raise CommandError("give audio files or --manifest")
    if args.vad == "oracle" and (args.audio or not args.manifest):
        raise CommandError("--vad oracle needs --manifest (with rttm_filepath) only")
    if args.oracle_num_speakers and (args.audio or args.num_speakers):
        raise CommandError("--oracle-num-speakers takes the counts of --manifest only")
    check_folder(args.out)
    jobs = [file_job(path) for path in args.audio]
    jobs += manifest_jobs(args.manifest, args) if args.manifest else []
    check_stems(jobs)
    vad = choose_vad(args.vad, args.device)
    model = load_speaker_model(args.model, args.device)
    for job in jobs:  # every recording's speech and windows before any embedding
        prepare(job, model, vad, args.num_speakers)
    for job in jobs:
        run(job, model, args.max_speakers)
    for job in jobs:  # outputs at the end
        write_job(job, args.out)
    print_summary(jobs, args.out)
    return 0


def diarize_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="minispeech diarize",
        description="Who spoke when: one RTTM per recording (DIR/<stem>.rttm) by "
        "speech detection, multi-scale speaker embeddings and NME-SC clustering "
        "(NeMo's ClusteringDiarizer); with references, the pooled DER.",
    )
    parser.add_argument("model", help="speaker model file (.nemo: TitaNet, ECAPA)")
    parser.add_argument("audio", nargs="*", help="audio files (WAV, FLAC, OGG, ...)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--manifest", help="NeMo diarization manifest (JSON lines)")
    parser.add_argument("--out", required=True, help="folder for the RTTM files")
    parser.add_argument("--num-speakers", type=positive_int, help="known count")
    parser.add_argument("--max-speakers", type=positive_int, default=8, help="(8)")
    parser.add_argument(
        "--oracle-num-speakers", action="store_true", help="each line's num_speakers"
    )
    parser.add_argument(
        "--vad", default="energy", help="energy (default), oracle or a VAD model file"
    )
    return parser


def file_job(path: str, where: str = "", offset=0.0, duration=None) -> dict:
    """One recording to diarize: its audio checked (readable, offset inside)."""
    from minispeech.audio.io import AudioError, audio_info

    try:
        seconds = audio_info(path).duration
    except AudioError as error:
        raise CommandError(f"{where}{error}") from None
    if offset >= seconds:
        raise CommandError(f"{where}offset {offset} is past the end of {path}")
    return {
        "audio": path,
        "id": Path(path).stem,
        "where": where or f"{path}: ",
        "offset": offset,
        "duration": duration,
        "num_speakers": None,
        "reference": None,
    }


def manifest_jobs(manifest: str, args) -> list[dict]:
    """The recordings of a NeMo diarization manifest, every line checked."""
    from minispeech.data import ManifestError
    from minispeech.diarization.simulate import read_diarization_manifest

    try:
        rows = read_diarization_manifest(manifest)
    except ManifestError as error:
        raise CommandError(str(error)) from None
    jobs = []
    for number, row in rows:
        where = f"{manifest}:{number}: "
        job = file_job(row["audio_filepath"], where, row["offset"], row["duration"])
        if args.oracle_num_speakers:
            if row["num_speakers"] is None:
                raise CommandError(f"{where}num_speakers: null, --oracle-num-speakers")
            job["num_speakers"] = row["num_speakers"]
        job["reference"] = row["reference"]
        if job["reference"] is None and args.vad == "oracle":
            raise CommandError(f"{where}rttm_filepath: null, --vad oracle needs it")
        jobs.append(job)
    return jobs


def check_stems(jobs: list[dict]) -> None:
    """Two recordings (or one twice) may not write the same DIR/<stem>.rttm."""
    seen: set[str] = set()
    for job in jobs:
        if job["id"] in seen:
            raise CommandError(f"{job['where']}{job['id']}.rttm would be written twice")
        seen.add(job["id"])


def choose_vad(name: str, device: str):
    """--vad: None (energy_vad), "oracle" (per recording), or a VAD model's method."""
    if name in ("energy", "oracle"):
        return None if name == "energy" else "oracle"
    if not Path(name).is_file():
        raise CommandError(f"--vad {name}: use energy, oracle or a VAD model file")
    model = load_model(name, device)
    if not hasattr(model, "speech_segments"):
        raise CommandError(f"--vad {name}: a {type(model).__name__}, not a VAD model")
    return model.speech_segments


def prepare(job: dict, model, vad, num_speakers: int | None) -> None:
    """Load the wave, find its speech and windows; check the speaker count."""
    import time

    from minispeech.audio.io import load_audio
    from minispeech.diarization import pipeline

    start = time.perf_counter()
    wave, _ = load_audio(
        job["audio"], model.sample_rate, job["offset"], job["duration"]
    )  # (S,)
    if vad == "oracle":
        vad = pipeline.oracle_vad(job["reference"], job["offset"], model.sample_rate)
    job["num_speakers"] = count = job["num_speakers"] or num_speakers
    try:
        regions, segments = pipeline.find_windows(wave, model.sample_rate, vad, count)
    except pipeline.DiarizationError as error:
        raise CommandError(f"{job['where']}{error}") from None
    job.update(wave=wave, segments=segments, speech_s=sum(b - a for a, b in regions))
    job["duration_s"] = len(wave) / model.sample_rate
    job["seconds"] = time.perf_counter() - start


def run(job: dict, model, max_speakers: int) -> None:
    """Diarize one prepared recording: its turns, in the file's time."""
    import time

    from minispeech.diarization.pipeline import diarize_segments

    start, wave, offset = time.perf_counter(), job.pop("wave"), job["offset"]
    turns = diarize_segments(
        wave, job["segments"], model, job["num_speakers"], max_speakers
    )
    job["turns"] = [Segment(t.start + offset, t.duration, t.speaker) for t in turns]
    job["seconds"] += time.perf_counter() - start


def write_job(job: dict, out: str) -> None:
    """DIR/<id>.rttm (empty when no speech was found)."""
    from minispeech.core.checkpoint import atomic_write
    from minispeech.diarization.rttm import rttm_lines

    lines = rttm_lines(job["id"], job["turns"])
    text = "".join(line + "\n" for line in lines).encode()
    job["rttm"] = atomic_write(Path(out) / f"{job['id']}.rttm", lambda f: f.write(text))


def print_summary(jobs: list[dict], out: str) -> None:
    """A line per recording, the totals, and the DER where there are references."""
    from minispeech.metrics.der import der

    print(f"{'recording':<24} {'speakers':>8} {'speech_s':>9} {'time_s':>7}")
    for job in jobs:
        n = speakers(job["turns"])
        print(f"{job['id']:<24} {n:>8} {job['speech_s']:>9.1f} {job['seconds']:>7.2f}")
        if not job["turns"]:
            print(f"note: {job['audio']}: no speech found, {job['rttm']} is empty")
    audio_s = sum(job["duration_s"] for job in jobs)
    seconds = sum(job["seconds"] for job in jobs)
    speed = f"{audio_s / max(seconds, 1e-9):.0f}x real time"
    print(
        f"{len(jobs)} recordings, {audio_s:.1f} s in {seconds:.1f} s ({speed}) -> {out}"
    )
    scored = [job for job in jobs if job["reference"] is not None]
    if scored:
        refs = {job["id"]: to_turns(job["reference"]) for job in scored}
        hyps = {job["id"]: to_turns(job["turns"]) for job in scored}
        result = der(refs, hyps, collar=0.25, ignore_overlap=False)
        rates = (result.miss, result.false_alarm, result.confusion)
        names = ("miss", "false alarm", "confusion")
        parts = ", ".join(f"{name} {100 * r:.2f}%" for name, r in zip(names, rates))
        exact = sum(speakers(j["turns"]) == speakers(j["reference"]) for j in scored)
        print(f"DER {100 * result.der:.2f}% ({parts}; collar 0.25 s, overlap scored)")
        print(f"speaker count exact: {exact}/{len(scored)} recordings")


def speakers(turns) -> int:
    return len({turn.speaker for turn in turns})
