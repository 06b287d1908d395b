"""`minispeech enhance`: same names, rates and lengths; resampling to a network's
rate and back; peak scaling with a note; inputs checked and outputs written only at
the end. The network is a stand-in (the verb only needs `enhance` and
`sample_rate`); the baselines are stand-ins too, plus one run of the real Wiener
filter when minispeech/enhancement/classic.py is there."""

import json
import sys
import types

import numpy as np
import pytest
import soundfile as sf

from minispeech.command_line import CommandError
from minispeech.enhancement import commands
from minispeech.enhancement.commands import enhance_verb


class HalfGain:
    """Stand-in enhancement network at `sample_rate`: halves its input."""

    def __init__(self, sample_rate=16000, gain=0.5, fail_after=None):
        self.sample_rate, self.gain, self.fail_after = sample_rate, gain, fail_after
        self.rates_seen = []

    def enhance(self, wave):
        if self.fail_after is not None and len(self.rates_seen) >= self.fail_after:
            raise RuntimeError("stand-in failure")
        self.rates_seen.append(wave.numel())
        return wave * self.gain


@pytest.fixture
def noisy(tmp_path):
    """a.wav (16 kHz, 1 s), b.flac (8 kHz, 0.7 s), c.wav (16 kHz, 0.5 s)."""
    rng = np.random.default_rng(0)
    (tmp_path / "in").mkdir()
    files = {"a.wav": (16000, 16000), "b.flac": (8000, 5600), "c.wav": (16000, 8000)}
    for name, (rate, n) in files.items():
        wave = 0.2 * np.sin(2 * np.pi * 300 * np.arange(n) / rate)
        wave += 0.02 * rng.standard_normal(n)
        sf.write(tmp_path / "in" / name, wave, rate)
    return {name: str(tmp_path / "in" / name) for name in files}


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    """A network file path; load_model returns the HalfGain it holds."""
    path = tmp_path / "tiny.nemo"
    path.write_bytes(b"stand-in")
    net = HalfGain()
    monkeypatch.setattr(commands, "load_model", lambda name, device: net)
    return str(path), net


def test_enhance_keeps_names_rates_and_lengths(noisy, stand_in, tmp_path, capsys):
    path, net = stand_in
    out = tmp_path / "out"
    assert enhance_verb([path, *noisy.values(), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.wav", "b.wav", "c.wav"]
    for name, source in noisy.items():
        x, rate = sf.read(source)
        y, out_rate = sf.read(out / f"{name.split('.')[0]}.wav")
        assert out_rate == rate and y.shape == x.shape, name
        if rate == 16000:  # no resampling: exactly half, to 16-bit precision
            assert np.abs(y - 0.5 * x).max() < 2e-4, name
        else:  # 8 kHz -> 16 kHz -> the network -> 8 kHz: half, but the resampling
            # filter removes the hiss above 0.8 x 4 kHz: error 20 dB below the signal
            error = np.sqrt(np.mean((y - 0.5 * x) ** 2) / np.mean((0.5 * x) ** 2))
            assert error < 0.1, (name, error)
    assert net.rates_seen == [16000, 11200, 8000]  # b.flac ran at 16 kHz
    assert "wrote 3 files" in capsys.readouterr().out


def test_enhance_scales_a_loud_output_down_with_a_note(noisy, stand_in, tmp_path):
    path, net = stand_in
    net.gain = 20.0  # peak ~4.4
    out = tmp_path / "out"
    with pytest.MonkeyPatch.context() as mp:
        notes = []
        mp.setattr("builtins.print", lambda *a, **k: notes.append(" ".join(a)))
        enhance_verb([path, noisy["a.wav"], "--out", str(out)])
    y, _ = sf.read(out / "a.wav")
    assert abs(np.abs(y).max() - 0.99) < 1e-3
    x, _ = sf.read(noisy["a.wav"])
    assert np.corrcoef(x, y)[0, 1] > 0.9999  # scaled as a whole, not clipped
    assert any("a.wav" in n and "0.99" in n for n in notes if n.startswith("note"))


def test_enhance_checks_every_input_before_work(noisy, stand_in, tmp_path):
    path, net = stand_in
    out = tmp_path / "out"
    cases = {
        "missing": ([path, noisy["a.wav"], str(tmp_path / "nope.wav")], "no such"),
        "same name": ([path, noisy["a.wav"], str(tmp_path / "in" / "a.wav")], "both"),
        "no file": ([str(tmp_path / "nope.nemo"), noisy["a.wav"]], "wiener"),
    }
    (tmp_path / "x").mkdir()
    sf.write(tmp_path / "x" / "a.wav", np.zeros(100), 16000)
    cases["same name"] = ([path, noisy["a.wav"], str(tmp_path / "x" / "a.wav")], "both")
    for name, (argv, message) in cases.items():
        with pytest.raises(CommandError, match=message):
            enhance_verb([*argv, "--out", str(out)])
        assert not out.exists() and net.rates_seen == [], name
    with pytest.raises(CommandError, match="overwrite"):
        enhance_verb([path, noisy["a.wav"], "--out", str(tmp_path / "in")])
    (tmp_path / "file").write_text("")
    with pytest.raises(CommandError, match="not a folder"):
        enhance_verb([path, noisy["a.wav"], "--out", str(tmp_path / "file")])
    with pytest.raises(SystemExit):
        enhance_verb([path, "--out", str(out)])  # nothing to enhance


def test_enhance_writes_nothing_when_one_input_fails(noisy, stand_in, tmp_path):
    path, net = stand_in
    net.fail_after = 1
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="stand-in"):
        enhance_verb([path, noisy["a.wav"], noisy["c.wav"], "--out", str(out)])
    assert not out.exists()  # a.wav was enhanced but not written


def test_enhance_refuses_a_file_without_enhance(noisy, tmp_path, monkeypatch):
    (tmp_path / "asr.nemo").write_bytes(b"x")
    monkeypatch.setattr(commands, "load_model", lambda name, device: object())
    with pytest.raises(CommandError, match="holds a object, not an enhancement"):
        enhance_verb([str(tmp_path / "asr.nemo"), noisy["a.wav"], "--out", "o"])


def test_enhance_reads_a_manifest(noisy, stand_in, tmp_path):
    path, net = stand_in
    manifest = tmp_path / "in" / "pairs.jsonl"
    rows = [{"noisy_filepath": "a.wav", "clean_filepath": "c.wav"}]
    rows += [{"audio_filepath": "b.flac", "duration": 0.7}]
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "out"
    assert enhance_verb([path, "--manifest", str(manifest), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.wav", "b.wav"]
    segment = {"audio_filepath": "a.wav", "offset": 0.1, "duration": 0.5}
    manifest.write_text(json.dumps(segment) + "\n")
    with pytest.raises(CommandError, match=r"pairs\.jsonl:1: a segment"):
        enhance_verb([path, "--manifest", str(manifest), "--out", str(out)])


def test_enhance_baselines_run_at_the_input_rate(noisy, tmp_path, monkeypatch):
    seen = []

    def fake(name, gain):
        def method(wave, sample_rate=16000):
            seen.append((name, sample_rate))
            return wave * gain

        return method

    fake_module = types.ModuleType("minispeech.enhancement.classic")
    fake_module.wiener_filter = fake("wiener", 0.25)
    fake_module.spectral_subtraction = fake("subtraction", 0.75)
    monkeypatch.setitem(sys.modules, "minispeech.enhancement.classic", fake_module)
    monkeypatch.setattr("minispeech.enhancement.classic", fake_module, raising=False)
    for method, gain in (("wiener", 0.25), ("spectral-subtraction", 0.75)):
        out = tmp_path / method
        enhance_verb([method, noisy["a.wav"], noisy["b.flac"], "--out", str(out)])
        for name in ("a", "b"):
            x, rate = sf.read(noisy[f"{name}.{'wav' if name == 'a' else 'flac'}"])
            y, out_rate = sf.read(out / f"{name}.wav")
            assert out_rate == rate and np.abs(y - gain * x).max() < 2e-4
    assert seen == [
        ("wiener", 16000),
        ("wiener", 8000),
        ("subtraction", 16000),
        ("subtraction", 8000),
    ]


def test_enhance_with_the_real_wiener_filter(noisy, tmp_path):
    pytest.importorskip("minispeech.enhancement.classic")
    out = tmp_path / "out"
    assert enhance_verb(["wiener", noisy["b.flac"], "--out", str(out)]) == 0
    x, rate = sf.read(noisy["b.flac"])
    y, out_rate = sf.read(out / "b.wav")
    assert out_rate == rate == 8000 and y.shape == x.shape
    assert np.isfinite(y).all() and np.abs(y).max() > 0
