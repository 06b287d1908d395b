"""Manifests for real corpora: LibriSpeech, LJSpeech and VoxCeleb folder trees.

Each preparer walks a downloaded (and extracted) corpus, reads every audio header
with ``audio_info`` for its duration, and writes NeMo JSONL manifests whose audio
paths are relative to the manifest (so ``read_manifest`` resolves them back). All
problems of a tree (a transcript without audio, a malformed line, an unreadable
file) are collected and raised together as one ``ManifestError`` before anything
is written.

Layouts and conventions:
- LibriSpeech (Panayotov et al. 2015, "Librispeech: an ASR corpus based on public
  domain audio books"): ``<split>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt``
  with lines ``<utt-id> <TEXT>`` next to ``<utt-id>.flac``. One manifest per split;
  text lowercased (ASR convention, as NeMo's get_librispeech_data.py).
- LJSpeech (Ito & Johnson 2017): ``metadata.csv`` with ``id|text|normalized text``
  lines and ``wavs/<id>.wav``. ``text`` is the normalized text (numbers spelled out)
  with its case kept (TTS convention); ``raw_text`` is the second column.
- VoxCeleb (Nagrani et al. 2017, arXiv:1706.08612): ``<speaker>/<video>/<utt>.wav``;
  rows carry ``speaker`` and an ``id`` of ``speaker/video/utt``; no text.
"""

import os
from pathlib import Path

from minispeech.audio.io import AudioError, audio_info
from minispeech.data.manifest import ManifestError, write_manifest

__all__ = ["prepare_librispeech", "prepare_ljspeech", "prepare_voxceleb"]

AUDIO_SUFFIXES = (".wav", ".flac")


def _duration(path: Path, problems: list[str]) -> float | None:
    """Header duration in seconds (4 decimals), or None with the problem recorded."""
    try:
        return round(audio_info(path).duration, 4)
    except AudioError as err:
        problems.append(str(err))
        return None


def _existing_folder(root: str | os.PathLike) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise ManifestError([f"{root}: corpus folder not found"])
    return root


def _finish(problems: list[str], manifests: dict[str, tuple[Path, list]]) -> dict:
    """Raise every problem at once, else write the manifests -> {name: path}."""
    if problems:
        raise ManifestError(problems)
    for path, rows in manifests.values():
        write_manifest(path, rows, relative_to=path.parent)
    return {name: path for name, (path, _) in manifests.items()}


def _librispeech_chapter(transcript: Path, problems: list[str]) -> list[dict]:
    """Rows of one ``<speaker>-<chapter>.trans.txt`` and the .flac files beside it."""
    rows, speaker = [], transcript.parent.parent.name
    lines = transcript.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        utt_id, _, text = line.strip().partition(" ")
        audio = transcript.parent / f"{utt_id}.flac"
        if not text.strip():
            problems.append(f"{transcript}:{number}: text: no transcript for {utt_id}")
        elif not audio.is_file():
            problems.append(f"{transcript}:{number}: audio_filepath: {audio} missing")
        elif (duration := _duration(audio, problems)) is not None:
            rows.append(
                {
                    "audio_filepath": str(audio),
                    "duration": duration,
                    "text": text.strip().lower(),
                    "speaker": speaker,
                    "id": utt_id,
                }
            )
    return rows


def _librispeech_transcripts(root: Path) -> dict[Path, str]:
    """Every ``*.trans.txt`` under ``root`` -> the split it belongs to."""
    transcripts = sorted(root.glob("*/*/*/*.trans.txt"))
    if transcripts:
        return {t: t.parents[2].name for t in transcripts}
    transcripts = sorted(root.glob("*/*/*.trans.txt"))  # root is a single split
    if not transcripts:
        raise ManifestError([f"{root}: no <speaker>/<chapter>/*.trans.txt found"])
    return {t: root.name for t in transcripts}


def prepare_librispeech(root: str | os.PathLike, out_dir: str | os.PathLike) -> dict:
    """LibriSpeech tree -> ``out_dir/<split>.jsonl`` for every split found.

    ``root`` is the folder holding the splits (``LibriSpeech/``) or one split
    folder itself. Returns {split name: manifest path}.
    """
    root, out_dir = _existing_folder(root), Path(out_dir)
    problems, splits = [], {}
    for transcript, split in _librispeech_transcripts(root).items():
        rows = _librispeech_chapter(transcript, problems)
        splits.setdefault(split, []).extend(rows)
    manifests = {s: (out_dir / f"{s}.jsonl", rows) for s, rows in splits.items()}
    return _finish(problems, manifests)


def _ljspeech_row(root: Path, where: str, line: str, problems: list) -> dict | None:
    """One ``id|text|normalized text`` line -> a row, or None with the problem."""
    fields = line.split("|")  # not csv: the texts contain unbalanced quotes
    if len(fields) not in (2, 3) or not all(f.strip() for f in fields):
        problems.append(f"{where}: line: expected id|text|normalized text")
        return None
    utt_id, raw_text, text = fields[0], fields[1], fields[-1]
    audio = root / "wavs" / f"{utt_id}.wav"
    if not audio.is_file():
        problems.append(f"{where}: audio_filepath: {audio} missing")
        return None
    duration = _duration(audio, problems)
    if duration is None:
        return None
    return {
        "audio_filepath": str(audio),
        "duration": duration,
        "text": text.strip(),
        "raw_text": raw_text.strip(),
        "id": utt_id,
    }


def prepare_ljspeech(root: str | os.PathLike, out_dir: str | os.PathLike) -> dict:
    """LJSpeech folder -> ``out_dir/ljspeech.jsonl``; returns {"ljspeech": path}."""
    root, out_dir = _existing_folder(root), Path(out_dir)
    metadata = root / "metadata.csv"
    if not metadata.is_file():
        raise ManifestError([f"{metadata}: not found (not an LJSpeech folder?)"])
    problems, rows = [], []
    lines = metadata.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if line.strip():
            row = _ljspeech_row(root, f"{metadata}:{number}", line, problems)
            rows += [row] if row else []
    if not rows and not problems:
        problems.append(f"{metadata}: no entries")
    return _finish(problems, {"ljspeech": (out_dir / "ljspeech.jsonl", rows)})


def prepare_voxceleb(
    root: str | os.PathLike, out_dir: str | os.PathLike, name: str = "voxceleb"
) -> dict:
    """VoxCeleb-style ``<speaker>/<video>/<utt>.wav`` tree -> ``out_dir/<name>.jsonl``
    with ``speaker`` fields; returns {name: path}."""
    root, out_dir = _existing_folder(root), Path(out_dir)
    files = sorted(p for p in root.glob("*/*/*") if p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise ManifestError([f"{root}: no <speaker>/<video>/<utt>.wav files found"])
    problems, rows = [], []
    for audio in files:
        duration = _duration(audio, problems)
        if duration is not None:
            speaker, video = audio.parent.parent.name, audio.parent.name
            utt_id = f"{speaker}/{video}/{audio.stem}"
            row = {"audio_filepath": str(audio), "duration": duration}
            rows.append({**row, "speaker": speaker, "id": utt_id})
    return _finish(problems, {name: (out_dir / f"{name}.jsonl", rows)})
