"""The bridge to NVIDIA NeMo's `.nemo` files: one module per task family."""

from minispeech.nemo.importer import NemoImportError, import_nemo, load_model
