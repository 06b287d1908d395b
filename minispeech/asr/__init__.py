"""ASR heads, losses and decoders: CTC, RNN-T/TDT, attention encoder-decoder."""
