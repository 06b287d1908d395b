"""NeMo-style JSONL manifests: read with full validation, write, filter, check.

A manifest holds one JSON object per line, e.g.
``{"audio_filepath": "audio/0001.flac", "duration": 2.31, "text": "turn it on"}``
(NeMo's format; optional ``offset`` and ``duration`` select a segment of a file,
``speaker`` and any other field travel along untouched). Relative audio paths are
relative to the manifest's folder, so a corpus folder can move as a whole.

Every line is validated before anything else happens, and all problems are reported
together in one ``ManifestError``, one per line as ``path:line: field: problem``, so a
broken manifest is fixed in one pass instead of one crash per run. Checked:
invalid JSON, duplicate keys, a line that is not an object, missing or null required
fields, wrong types, empty path or text, non-positive or non-finite duration,
negative or non-finite offset, a missing audio file, a path that is not a file, and
duplicate entries or ``id``s. Blank lines are skipped (they keep their line numbers); a
manifest with no entries at all is an error. A UTF-8 byte-order mark and CRLF line
ends (Windows editors) are accepted.
"""

import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from minispeech.audio.io import AudioError, audio_info
from minispeech.errors import MinispeechError

__all__ = [
    "ManifestError",
    "read_manifest",
    "read_numbered_manifest",
    "write_manifest",
    "filter_by_duration",
    "check_manifest",
    "ManifestReport",
]

DURATION_TOLERANCE = 0.01  # seconds: manifest vs audio header (10 ms)


class ManifestError(MinispeechError, ValueError):
    """A manifest is unusable; ``problems`` holds one ``path:line: field: problem``
    string per problem. One problem is the whole (one-line) message; several are
    listed one a line under ``N problems in manifest:``."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        if len(self.problems) == 1:
            super().__init__(self.problems[0])
            return
        count = f"{len(self.problems)} problems in manifest:"
        super().__init__("\n".join([count, *self.problems]))


# Known fields: (accepted types, human name); bool is refused even where int is
# accepted. Other fields are not checked.
_TYPES = {
    "audio_filepath": ((str,), "a string"),
    "text": ((str,), "a string"),
    "duration": ((int, float), "a number"),
    "offset": ((int, float), "a number"),
    "speaker": ((str, int), "a string or an integer"),
}


class _DuplicateKeys(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    keys = [key for key, _ in pairs]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise _DuplicateKeys(", ".join(repeated))
    return dict(pairs)


def _parse_line(line: str) -> tuple[dict | None, list[tuple[str, str]]]:
    """One JSON line -> (object or None, [(field, problem), ...])."""
    try:
        obj = json.loads(line, object_pairs_hook=_no_duplicate_keys)
    except _DuplicateKeys as err:
        return None, [(str(err), "key appears more than once on the line")]
    except json.JSONDecodeError as err:
        return None, [("json", f"invalid JSON ({err.msg} at column {err.colno})")]
    if not isinstance(obj, dict):
        return None, [("json", f"not a JSON object (got {type(obj).__name__})")]
    return obj, []


def _value_problems(obj: dict, required: Sequence[str]) -> list[tuple[str, str]]:
    """Missing, null, mistyped and out-of-range fields of one parsed line."""
    problems = [(name, "missing") for name in required if name not in obj]
    problems += [(name, "null") for name in required if obj.get(name, 0) is None]
    for name, (types, type_name) in _TYPES.items():
        value = obj.get(name)
        if value is None:
            continue
        bad_type = not isinstance(value, types) or isinstance(value, bool)
        if bad_type:
            problems.append((name, f"must be {type_name}, got {json.dumps(value)}"))
        elif name in ("duration", "offset") and not math.isfinite(value):
            problems.append((name, f"must be finite, got {value}"))
        elif name == "duration" and value <= 0:
            problems.append((name, f"must be positive, got {value}"))
        elif name == "offset" and value < 0:
            problems.append((name, f"must be >= 0, got {value}"))
        elif name == "audio_filepath" and not value.strip():
            problems.append((name, "empty path"))
        elif name == "text" and name in required and not value.strip():
            problems.append((name, "empty text"))
    return problems


def _resolve(folder: Path, audio_path: str) -> str:
    return os.path.normpath(os.path.join(folder, os.path.expanduser(audio_path)))


def _audio_problems(row: dict, check_audio: bool, exists: dict) -> list[tuple]:
    """The audio file is missing or not a file."""
    problem = _file_problem(row["audio_filepath"], exists) if check_audio else None
    return [("audio_filepath", problem)] if problem else []


def _duplicate(row: dict, number: int, seen: dict) -> list[tuple[str, str]]:
    """The same (file, offset, duration), or the same ``id``, on an earlier line."""
    key = (row["audio_filepath"], row.get("offset", 0), row.get("duration"))
    first = seen.setdefault(key, number)
    if first != number:
        return [("audio_filepath", f"duplicate of line {first}")]
    if "id" in row:  # utterance ids name outputs: two alike would overwrite
        utt = json.dumps(row["id"])
        first = seen.setdefault(("id", utt), number)
        if first != number:
            return [("id", f"{utt} is also the id on line {first}")]
    return []


def read_numbered_manifest(
    path: str | os.PathLike,
    required: Sequence[str] = ("audio_filepath", "duration"),
    check_audio: bool = True,
    allow_repeats: bool = False,
) -> list[tuple[int, dict]]:
    """``read_manifest``, with each row's line number: [(line, row), ...], so a later
    problem with a row (an untokenizable text, a segment past the end of its audio)
    can be reported as ``path:line``. ``allow_repeats``: one audio on several lines
    is fine (a question-answer manifest asks several questions about a recording)."""
    path = Path(path)
    if path.is_dir():
        raise ManifestError([f"{path}: is a folder, not a manifest file"])
    if not path.is_file():
        raise ManifestError([f"{path}: manifest file not found"])
    folder = path.absolute().parent
    problems, rows, seen, exists = [], [], {}, {}
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()  # BOM, CRLF ok
    except UnicodeDecodeError as err:
        raise ManifestError([f"{path}: not UTF-8 text (byte {err.start})"]) from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        obj, line_problems = _parse_line(line)
        if obj is not None:
            line_problems = _value_problems(obj, required)
            audio = obj.get("audio_filepath")
            if isinstance(audio, str) and audio.strip():
                obj = {**obj, "audio_filepath": _resolve(folder, audio)}
                valid = not line_problems  # only a valid row can duplicate another
                line_problems += _audio_problems(obj, check_audio, exists)
                if valid and not allow_repeats:
                    line_problems += _duplicate(obj, number, seen)
            rows.append((number, obj))
        problems += [f"{path}:{number}: {name}: {what}" for name, what in line_problems]
    if not rows and not problems:
        problems.append(f"{path}: empty manifest (no entries)")
    if problems:
        raise ManifestError(problems)
    return rows


def _file_problem(audio: str, cache: dict[str, str | None]) -> str | None:
    """Why ``audio`` cannot be read as a file, or None (memoized per path)."""
    if audio not in cache:
        if os.path.isfile(audio):
            cache[audio] = None
        elif os.path.exists(audio):
            cache[audio] = f"not a file: {audio}"
        else:
            cache[audio] = f"audio file not found: {audio}"
    return cache[audio]


def read_manifest(
    path: str | os.PathLike,
    required: Sequence[str] = ("audio_filepath", "duration"),
    check_audio: bool = True,
) -> list[dict]:
    """Read and validate a JSONL manifest -> list of rows (dicts).

    ``audio_filepath`` comes back absolute (relative ones are resolved against the
    manifest's folder). Raises ``ManifestError`` listing every problem found.
    """
    return [row for _, row in read_numbered_manifest(path, required, check_audio)]


def write_manifest(
    path: str | os.PathLike,
    rows: Iterable[dict],
    relative_to: str | os.PathLike | None = None,
) -> Path:
    """Write rows as JSONL (UTF-8, one object per line), atomically.

    With ``relative_to`` (usually the manifest's own folder) audio paths are written
    relative to that folder, so ``read_manifest`` resolves them back. A row that is not
    strict JSON (NaN, a tensor, ...) is refused before anything is written.
    """
    path = Path(path)
    lines = []
    for k, row in enumerate(rows):
        if not isinstance(row, dict):
            raise TypeError(f"row {k} must be a dict, got {type(row).__name__}")
        if relative_to is not None and "audio_filepath" in row:
            audio = os.path.abspath(row["audio_filepath"])
            relative = Path(os.path.relpath(audio, os.path.abspath(relative_to)))
            row = {**row, "audio_filepath": relative.as_posix()}
        try:
            lines.append(json.dumps(row, ensure_ascii=False, allow_nan=False))
        except (TypeError, ValueError) as err:
            raise ManifestError(
                [f"{path}: row {k}: not writable as JSON: {err}"]
            ) from None
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        partial.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        os.replace(partial, path)  # readers never see a half-written manifest
    except BaseException:
        partial.unlink(missing_ok=True)  # a full disk leaves no half file behind
        raise
    return path


def _hours(rows: Iterable[dict]) -> float:
    return sum(row["duration"] for row in rows) / 3600


def filter_by_duration(
    rows: Sequence[dict],
    min_duration: float | None = None,
    max_duration: float | None = None,
    name: str = "",
) -> list[dict]:
    """Keep rows with ``min_duration <= duration <= max_duration`` (None: no bound).

    Prints what was kept and what was dropped and why; keeping nothing raises
    ``ManifestError`` (an empty epoch is never silent).
    """
    if min_duration is None and max_duration is None:
        return list(rows)
    low = -math.inf if min_duration is None else min_duration
    high = math.inf if max_duration is None else max_duration
    short = [row for row in rows if row["duration"] < low]
    long = [row for row in rows if row["duration"] > high]
    kept = [row for row in rows if low <= row["duration"] <= high]
    label = f"{name}: " if name else ""
    report = (
        f"{label}kept {len(kept)} of {len(rows)} utterances "
        f"({_hours(kept):.2f} of {_hours(rows):.2f} h); dropped {len(short)} "
        f"shorter than {min_duration} s ({_hours(short):.2f} h) and {len(long)} "
        f"longer than {max_duration} s ({_hours(long):.2f} h)"
    )
    print(report)
    if not kept:
        raise ManifestError([f"{label}duration filter kept nothing: {report}"])
    return kept


@dataclass(frozen=True)
class ManifestReport:
    """What ``check_manifest`` found; ``str(report)`` is the printable summary."""

    path: str  # the manifest checked
    n_utterances: int  # entries
    hours: float  # sum of manifest durations / 3600
    n_speakers: int | None  # distinct "speaker" values; None without that field
    problems: list[str] = field(default_factory=list)  # path:line: field: problem

    @property
    def ok(self) -> bool:
        """No problems found."""
        return not self.problems

    def __str__(self) -> str:
        speakers = "no speaker field" if self.n_speakers is None else self.n_speakers
        lines = [
            f"{self.path}",
            f"  utterances: {self.n_utterances}",
            f"  hours:      {self.hours:.3f}",
            f"  speakers:   {speakers}",
        ]
        if self.ok:
            lines.append("  ok: durations match the audio headers within 10 ms")
        else:
            lines.append(f"  {len(self.problems)} problems:")
            lines += [f"  {problem}" for problem in self.problems]
        return "\n".join(lines)


def _header_problem(row: dict) -> str | None:
    """Compare a row's duration (and offset) with the audio file's header."""
    try:
        info = audio_info(row["audio_filepath"])
    except AudioError as err:
        return f"audio_filepath: {err}"
    offset, duration = row.get("offset", 0.0), row["duration"]
    if "offset" in row:  # a segment: it must fit inside the file
        if offset + duration > info.duration + DURATION_TOLERANCE:
            return (
                f"duration: segment {offset} + {duration} s ends after the file "
                f"({info.duration:.3f} s)"
            )
    elif abs(duration - info.duration) > DURATION_TOLERANCE:
        return f"duration: {duration} s in the manifest, {info.duration:.3f} s in audio"
    return None


def check_manifest(path: str | os.PathLike) -> ManifestReport:
    """Validate ``path`` (``ManifestError`` on invalid lines) and compare every
    duration with its audio header; mismatches over 10 ms are listed as problems."""
    numbered = read_numbered_manifest(path)
    problems = []
    for number, row in numbered:
        problem = _header_problem(row)
        if problem:
            problems.append(f"{path}:{number}: {problem}")
    rows = [row for _, row in numbered]
    speakers = {row["speaker"] for row in rows if row.get("speaker") is not None}
    has_speaker = any("speaker" in row for row in rows)
    return ManifestReport(
        path=str(path),
        n_utterances=len(rows),
        hours=_hours(rows),
        n_speakers=len(speakers) if has_speaker else None,
        problems=problems,
    )
