"""Noisy/clean pairs reach their SNR for every noise kind and repeat with the seed."""

import numpy as np
from conftest import corpus_rows

from minispeech.enhancement.pairs import noisy_examples


def _snr_reference(clean, noise) -> float:
    """The textbook definition, as a float64 loop."""
    p_clean = sum(float(c) ** 2 for c in clean) / len(clean)
    p_noise = sum(float(n) ** 2 for n in noise) / len(noise)
    return 10.0 * np.log10(p_clean / p_noise)


def test_noisy_examples_reach_snr_for_every_kind(corpus_dir):
    rows = corpus_rows(corpus_dir, limit=12)
    examples = noisy_examples(rows, seed=3, snr_range=(0.0, 10.0))
    assert {e.kind for e in examples} == {"white", "pink", "babble"}
    for e in examples:
        assert abs(_snr_reference(e.clean, e.noisy - e.clean) - e.snr_db) < 0.1
    again = noisy_examples(rows, seed=3)
    assert all(np.array_equal(a.noisy, b.noisy) for a, b in zip(examples, again))
