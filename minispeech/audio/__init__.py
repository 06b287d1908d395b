"""Audio: file I/O, resampling, STFT, mel features and SpecAugment."""
