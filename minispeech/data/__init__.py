"""Data: manifests, datasets, batching, tokenizers and the bundled corpus."""

from minispeech.data.datasets import AudioTextDataset, collate_audio_text
from minispeech.data.manifest import (
    ManifestError,
    ManifestReport,
    check_manifest,
    filter_by_duration,
    read_manifest,
    write_manifest,
)
from minispeech.data.prepare import (
    prepare_librispeech,
    prepare_ljspeech,
    prepare_voxceleb,
)
from minispeech.data.sampler import BucketingBatchSampler
from minispeech.data.tokenizers import (
    CharTokenizer,
    SentencePieceTokenizer,
    load_tokenizer,
)
