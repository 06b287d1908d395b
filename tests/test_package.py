"""The package surface: a light import, and every public name resolves."""

import importlib
import subprocess
import sys

import pytest

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
    """Each name in __all__ is the very object its defining module holds."""
    for name in minispeech.__all__:
        module = importlib.import_module(minispeech._EXPORTS[name])
        assert getattr(minispeech, name) is getattr(module, name), name
    assert "CTCModel" in dir(minispeech)


def test_train_is_the_loop():
    """`from minispeech import train` is the one loop, not a module of that name."""
    from minispeech import train
    from minispeech.training import loop

    assert train is loop.train and callable(train)


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no_such_name"):
        minispeech.no_such_name  # noqa: B018
