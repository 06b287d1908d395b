"""Speech enhancement: noisy/clean pairs made from the corpus so far."""

from minispeech.enhancement.pairs import NoisyExample, noisy_examples, write_noisy_copy
