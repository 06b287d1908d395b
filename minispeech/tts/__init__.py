"""Text-to-speech: tokenizer, FastPitch with a learned aligner, pitch, vocoders."""
