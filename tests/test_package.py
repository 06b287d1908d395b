"""The package surface: a light import, and every public name resolves."""

import subprocess
import sys

import minispeech


def test_import_is_light():
    """`import minispeech` imports no torch and no optional package (names are lazy)."""
    code = (
        "import sys, time; start = time.perf_counter(); import minispeech; "
        "heavy = {'torch', 'numpy', 'matplotlib', 'librosa', 'sentencepiece'}; "
        "print(sorted(heavy & set(sys.modules)), time.perf_counter() - start)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    loaded, seconds = out.stdout.rsplit(" ", 1)
    assert loaded == "[]", out.stdout
    assert float(seconds) < 2.0


def test_every_public_name_resolves():
    for name in minispeech.__all__:
        assert getattr(minispeech, name) is not None, name
    assert "CTCModel" in dir(minispeech)
