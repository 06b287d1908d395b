"""RTTM and UEM files: who spoke when, and where to score it (NIST RT evaluations).

RTTM (RT-09 evaluation plan, appendix A; read by md-eval-22.pl, pyannote, NeMo) holds
one line per speaker turn, 10 space-separated fields (the older 9-field form without
the last <NA> is accepted too):
    SPEAKER <file> 1 <onset> <duration> <NA> <NA> <speaker> <NA> <NA>
UEM (un-partitioned evaluation map) holds the regions to score, one line each:
    <file> <channel> <start> <end>
Times are in seconds. Blank lines and comments (starting with # or ;) are skipped, as
md-eval does. Every malformed line raises RTTMError naming the file and line.
"""

import math
from dataclasses import dataclass
from pathlib import Path

from minispeech.errors import MinispeechError

RTTM_FORMAT = "SPEAKER <file> 1 <onset> <duration> <NA> <NA> <speaker> <NA> <NA>"
UEM_FORMAT = "<file> <channel> <start> <end>"


class RTTMError(MinispeechError, ValueError):
    """A bad RTTM or UEM line (or file); the message is `path:line: problem`."""


@dataclass(frozen=True)
class Segment:
    """One speaker turn of a conversation, in seconds."""

    start: float
    duration: float
    speaker: str


def rttm_lines(recording: str, segments: list[Segment]) -> list[str]:
    """RTTM SPEAKER lines (NIST RT-09 format), times with millisecond precision."""
    return [
        f"SPEAKER {recording} 1 {s.start:.3f} {s.duration:.3f} <NA> <NA> {s.speaker}"
        " <NA> <NA>"
        for s in segments
    ]


def write_rttm(path, recording: str, segments: list[Segment]) -> None:
    Path(path).write_text("\n".join(rttm_lines(recording, segments)) + "\n")


def to_turns(segments: list[Segment]) -> list[tuple[float, float, str]]:
    """(start, end, speaker) tuples, what minispeech.metrics.der scores."""
    return [(s.start, s.start + s.duration, s.speaker) for s in segments]


def _numbered_lines(path):
    """(line number, fields) of each line that is not blank or a comment."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise RTTMError(f"{path}: cannot read: {error}") from None
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if fields and not fields[0].startswith(("#", ";")):
            yield number, fields


def _seconds(text: str, name: str, where: str) -> float:
    """A time field: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise RTTMError(f"{where}{name} {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise RTTMError(f"{where}{name} {text!r} must be a finite time >= 0")
    return value


def read_rttm(path) -> dict[str, list[Segment]]:
    """{recording: [Segment, ...]} from an RTTM file, in file order."""
    out: dict[str, list[Segment]] = {}
    for number, fields in _numbered_lines(path):
        where = f"{path}:{number}: "
        if fields[0] != "SPEAKER":
            raise RTTMError(
                f"{where}{fields[0]!r} line: only SPEAKER lines are read "
                f"({RTTM_FORMAT})"
            )
        if len(fields) not in (9, 10):
            raise RTTMError(
                f"{where}expected 10 fields ({RTTM_FORMAT}), got {len(fields)}"
            )
        onset = _seconds(fields[3], "onset", where)
        duration = _seconds(fields[4], "duration", where)
        out.setdefault(fields[1], []).append(Segment(onset, duration, fields[7]))
    return out


def read_uem(path) -> dict[str, list[tuple[float, float]]]:
    """{recording: [(start, end), ...]} from a UEM file, sorted by start. The channel
    is not used; end < start and overlapping segments of a recording are refused
    (touching ones are fine)."""
    out: dict[str, list[tuple[float, float, int]]] = {}
    for number, fields in _numbered_lines(path):
        where = f"{path}:{number}: "
        if len(fields) != 4:
            raise RTTMError(
                f"{where}expected 4 fields ({UEM_FORMAT}), got {len(fields)}"
            )
        start = _seconds(fields[2], "start", where)
        end = _seconds(fields[3], "end", where)
        if end < start:
            raise RTTMError(f"{where}end {end} is before start {start}")
        out.setdefault(fields[0], []).append((start, end, number))
    return {key: _disjoint(path, key, spans) for key, spans in out.items()}


def _disjoint(path, recording: str, spans) -> list[tuple[float, float]]:
    """The (start, end) of numbered UEM segments, sorted; an overlap is an error."""
    spans = sorted(spans)
    for (_, end, first), (start, _, number) in zip(spans, spans[1:]):
        if start < end:
            raise RTTMError(
                f"{path}:{number}: UEM segment of {recording} starting at {start} "
                f"overlaps the one on line {first} (ending at {end})"
            )
    return [(start, end) for start, end, _ in spans]
