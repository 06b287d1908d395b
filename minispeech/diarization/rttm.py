"""RTTM files: who spoke when, the format of NIST's Rich Transcription evaluations.

One line per speaker turn (RT-09 evaluation plan, appendix A; read by md-eval and
pyannote): `SPEAKER <file> 1 <onset> <duration> <NA> <NA> <speaker> <NA> <NA>`.
"""

from dataclasses import dataclass
from pathlib import Path


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


def read_rttm(path) -> dict[str, list[Segment]]:
    """{recording: [Segment, ...]} from an RTTM file; errors name the line."""
    out: dict[str, list[Segment]] = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 8 or fields[0] != "SPEAKER":
            raise ValueError(f"{path}:{number}: not an RTTM SPEAKER line: {line!r}")
        segment = Segment(float(fields[3]), float(fields[4]), fields[7])
        out.setdefault(fields[1], []).append(segment)
    return out
