"""RTTM and UEM reading (errors name file and line) and the `minispeech der` verb."""

import pytest

from minispeech.diarization.commands import der_verb
from minispeech.diarization.rttm import (
    RTTMError,
    Segment,
    read_rttm,
    read_uem,
    rttm_lines,
    to_turns,
)
from minispeech.errors import MinispeechError

# NeMo's DER cases (shared/nemo_reference/make_refs_tasks.py RTTM_CASES), as
# (start, end, speaker); their DERs below are from diar_ref_io.json.
SESS_A = (
    [
        (0.0, 2.0, "A"),
        (1.0, 3.5, "B"),
        (3.5, 5.0, "A"),
        (5.2, 7.0, "C"),
        (6.2, 7.4, "B"),
    ],
    [(0.1, 1.8, "s1"), (1.8, 3.6, "s2"), (3.6, 4.6, "s1"), (4.6, 5.1, "s2")]
    + [(5.3, 7.3, "s3"), (7.6, 8.0, "s1")],
)
SESS_B = (
    [
        (0.5, 1.5, "X"),
        (1.5, 2.0, "Y"),
        (2.3, 4.3, "X"),
        (3.5, 4.4, "Y"),
        (5.0, 6.0, "Y"),
    ],
    [(0.4, 2.1, "h1"), (2.3, 3.0, "h2"), (3.0, 4.5, "h1"), (5.1, 5.8, "h2")],
)


def write(path, text: str):
    path.write_text(text)
    return str(path)


def rttm_text(recording, turns) -> str:
    segments = [Segment(s, round(e - s, 3), w) for s, e, w in turns]
    return "\n".join(rttm_lines(recording, segments)) + "\n"


# ---------------------------------------------------------------- RTTM
def test_read_rttm_round_trip_and_turns(tmp_path):
    text = "# a comment\n\n" + rttm_text("sessA", SESS_A[0]) + rttm_text("b", SESS_B[0])
    rttm = read_rttm(write(tmp_path / "x.rttm", text))
    assert list(rttm) == ["sessA", "b"]
    assert rttm["sessA"][1] == Segment(1.0, 2.5, "B")
    turns = to_turns(rttm["sessA"])  # end = onset + duration, as NeMo's rttm_to_labels
    assert [w for *_, w in turns] == [w for *_, w in SESS_A[0]]
    assert [t[:2] for t in turns] == [pytest.approx(t[:2]) for t in SESS_A[0]]
    nine = "SPEAKER r 1 0.5 1.0 <NA> <NA> spk <NA>\n"  # RT-05's 9-field form
    assert read_rttm(write(tmp_path / "nine.rttm", nine)) == {
        "r": [Segment(0.5, 1.0, "spk")]
    }


GOOD = "SPEAKER r 1 0.50 1.00 <NA> <NA> spk <NA> <NA>"
BAD_LINES = {
    "too few fields": ("SPEAKER r 1 0.5 1.0 <NA> <NA>", "expected 10 fields"),
    "too many fields": (GOOD + " extra", r"expected 10 fields \(.*\), got 11"),
    "onset not a number": (GOOD.replace("0.50", "abc"), "onset 'abc' is not a number"),
    "duration not a number": (GOOD.replace("1.00", "1.0s"), "duration '1.0s' is not"),
    "negative duration": (GOOD.replace("1.00", "-1.00"), "duration '-1.00' must be"),
    "negative onset": (GOOD.replace("0.50", "-0.50"), "onset '-0.50' must be"),
    "nan duration": (GOOD.replace("1.00", "nan"), "duration 'nan' must be a finite"),
    "not SPEAKER": (GOOD.replace("SPEAKER", "LEXEME"), "'LEXEME' line: only SPEAKER"),
}


@pytest.mark.parametrize("case", list(BAD_LINES))
def test_read_rttm_names_file_and_line(tmp_path, case):
    line, message = BAD_LINES[case]
    path = write(tmp_path / "bad.rttm", f"{GOOD}\n\n{line}\n")
    with pytest.raises(RTTMError, match=rf"bad\.rttm:3: {message}"):
        read_rttm(path)


def test_rttm_error_is_a_value_error_and_a_minispeech_error(tmp_path):
    assert issubclass(RTTMError, ValueError) and issubclass(RTTMError, MinispeechError)
    with pytest.raises(RTTMError, match="missing.rttm: cannot read"):
        read_rttm(tmp_path / "missing.rttm")


# ---------------------------------------------------------------- UEM
def test_read_uem(tmp_path):
    text = "a 1 5.0 8.0\n;; comment\na 1 0.0 5.0\nb 1 0.5 2.25\n"
    assert read_uem(write(tmp_path / "x.uem", text)) == {
        "a": [(0.0, 5.0), (5.0, 8.0)],  # sorted; touching is fine
        "b": [(0.5, 2.25)],
    }


@pytest.mark.parametrize(
    "text,message",
    [
        (
            "a 1 0 5\nb 1 0 1\na 1 4.5 6\n",
            r"x\.uem:3: .* of a starting at 4.5 overlaps",
        ),
        ("a 1 0 5\na 1 0 1 x\n", r"x\.uem:2: expected 4 fields"),
        ("a 1 zero 5\n", r"x\.uem:1: start 'zero' is not a number"),
        ("a 1 5 4\n", r"x\.uem:1: end 4.0 is before start 5.0"),
    ],
)
def test_read_uem_refuses_bad_lines(tmp_path, text, message):
    with pytest.raises(RTTMError, match=message):
        read_uem(write(tmp_path / "x.uem", text))


def test_read_uem_overlap_names_both_lines(tmp_path):
    path = write(tmp_path / "x.uem", "a 1 2 6\na 1 0 3\n")
    with pytest.raises(RTTMError, match=r"x\.uem:1: .* overlaps the one on line 2"):
        read_uem(path)


# ---------------------------------------------------------------- minispeech der
@pytest.fixture
def rttm_pair(tmp_path):
    """A reference RTTM with both sessions, and one hypothesis RTTM per session."""
    ref = write(
        tmp_path / "ref.rttm",
        rttm_text("sessA", SESS_A[0]) + rttm_text("sessB", SESS_B[0]),
    )
    hyp_a = write(tmp_path / "a.rttm", rttm_text("sessA", SESS_A[1]))
    hyp_b = write(tmp_path / "b.rttm", rttm_text("sessB", SESS_B[1]))
    return ref, hyp_a, hyp_b


def table_rows(out: str) -> dict[str, list[str]]:
    """{first column: the other columns} of each table line."""
    rows = [line.split() for line in out.splitlines()[2:]]
    return {row[0]: row[1:] for row in rows}


def table(capsys) -> dict[str, list[str]]:
    return table_rows(capsys.readouterr().out)


def test_der_verb_prints_nemo_scores(rttm_pair, capsys):
    ref, hyp_a, hyp_b = rttm_pair
    assert der_verb(["--ref", ref, "--hyp", hyp_b, hyp_a]) == 0
    rows = table(capsys)
    # NeMo: sessA 0.2826, sessB 0.3261, pooled 0.2971 (collar 0.25, overlap scored)
    assert rows["sessA"] == ["4.60", "17.39%", "7.61%", "3.26%", "28.26%"]
    assert rows["sessB"][-1] == "32.61%" and rows["pooled"][-1] == "29.71%"
    der_verb(["--ref", ref, "--hyp", hyp_a, hyp_b, "--ignore-overlap"])
    rows = table(capsys)
    assert rows["sessA"][-1] == "16.67%" and rows["pooled"][-1] == "20.21%"
    der_verb(["--ref", ref, "--hyp", hyp_a, hyp_b, "--collar", "0"])
    assert table(capsys)["pooled"][-1] == "42.36%"


def test_der_verb_uem_and_notes(rttm_pair, tmp_path, capsys):
    ref, hyp_a, _ = rttm_pair
    uem = write(tmp_path / "x.uem", "sessA 1 0 8\nsessB 1 0 6\n")
    assert der_verb(["--ref", ref, "--hyp", hyp_a, "--uem", uem]) == 0
    out = capsys.readouterr().out
    assert table_rows(out)["sessB"] == ["2.30", "100.00%", "0.00%", "0.00%", "100.00%"]
    assert "note: no hypothesis, all missed: sessB" in out
    der_verb(["--ref", hyp_a, "--hyp", ref])
    assert "note: no reference, not scored: sessB" in capsys.readouterr().out


def test_der_verb_errors(rttm_pair, tmp_path, capsys):
    ref, hyp_a, _ = rttm_pair
    with pytest.raises(SystemExit) as exit_:
        der_verb(["--ref", ref, "--hyp", hyp_a, "--collar", "-1"])
    assert exit_.value.code == 2
    assert "must be >= 0 seconds" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        der_verb(["--ref", ref])  # --hyp is required
    uem = write(tmp_path / "x.uem", "sessA 1 0 8\n")
    with pytest.raises(
        MinispeechError, match="x.uem: no segments for recordings sessB"
    ):
        der_verb(["--ref", ref, "--hyp", hyp_a, "--uem", uem])
    bad = write(tmp_path / "bad.rttm", "SPEAKER sessA 1 0.0 x <NA> <NA> A <NA> <NA>\n")
    with pytest.raises(RTTMError, match="bad.rttm:1: duration 'x'"):
        der_verb(["--ref", ref, "--hyp", bad])
