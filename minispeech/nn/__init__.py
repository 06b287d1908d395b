"""Neural building blocks: attention, subsampling, Conformer and Transformer."""
