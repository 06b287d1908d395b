"""`python -m minispeech ...` is the same as the `minispeech` console script."""

from minispeech.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
