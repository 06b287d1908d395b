"""Data: manifests, datasets, batching, tokenizers and the bundled corpus."""
