"""The one training loop (`loop.train`), its options, counters, checkpoints and DDP."""
