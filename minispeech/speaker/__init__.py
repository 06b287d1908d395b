"""Speaker recognition: verification trial lists so far."""

from minispeech.speaker.trials import verification_trials, write_trials
