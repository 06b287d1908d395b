"""The one loop (`loop.train`): options, counters, optimizers, checkpoints, log, DDP."""
