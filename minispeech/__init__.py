"""minispeech: a small, readable, from-scratch reference implementation of speech AI.

The public names below are re-exported lazily (PEP 562): `import minispeech` stays fast
and imports nothing heavy until a name is used, so `minispeech --help` answers at once.
"""

import importlib

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    # audio
    "AudioError": "minispeech.audio",
    "load_audio": "minispeech.audio",
    "save_audio": "minispeech.audio",
    "audio_info": "minispeech.audio",
    "resample": "minispeech.audio",
    "stft": "minispeech.audio",
    "istft": "minispeech.audio",
    "get_window": "minispeech.audio",
    "mel_filterbank": "minispeech.audio",
    "MelSpectrogram": "minispeech.audio",
    "SpecAugment": "minispeech.audio",
    "yin": "minispeech.audio",
    # data
    "ManifestError": "minispeech.data",
    "read_manifest": "minispeech.data",
    "write_manifest": "minispeech.data",
    "AudioTextDataset": "minispeech.data",
    "collate_audio_text": "minispeech.data",
    "filter_by_duration": "minispeech.data",
    "check_manifest": "minispeech.data",
    "prepare_librispeech": "minispeech.data",
    "prepare_ljspeech": "minispeech.data",
    "prepare_voxceleb": "minispeech.data",
    "BucketingBatchSampler": "minispeech.data",
    "CharTokenizer": "minispeech.data",
    "load_tokenizer": "minispeech.data",
    "SentencePieceTokenizer": "minispeech.data",
    # metrics
    "wer": "minispeech.metrics",
    "cer": "minispeech.metrics",
    "word_errors": "minispeech.metrics",
    "edit_alignment": "minispeech.metrics",
    "ErrorCounts": "minispeech.metrics",
    "eer": "minispeech.metrics",
    "min_dcf": "minispeech.metrics",
    # config, checkpoint, model, loop
    "ConfigError": "minispeech.core.config",
    "load_config": "minispeech.core.config",
    "apply_overrides": "minispeech.core.overrides",
    "instantiate": "minispeech.core.config",
    "CheckpointError": "minispeech.core.checkpoint",
    "restore_from": "minispeech.core.model",
    "read_checkpoint": "minispeech.core.checkpoint",
    "SpeechModel": "minispeech.core.model",
    "train": "minispeech.training.loop",
    # encoders
    "MultiHeadAttention": "minispeech.nn",
    "RelPositionMultiHeadAttention": "minispeech.nn",
    "ConvSubsampling": "minispeech.nn",
    "ConformerLayer": "minispeech.nn",
    "ConformerEncoder": "minispeech.nn",
    "TransformerEncoder": "minispeech.nn",
    "TransformerDecoder": "minispeech.nn",
    "import_nemo": "minispeech.nemo",
    # ASR
    "ctc_loss": "minispeech.nn",
    "ctc_greedy_decode": "minispeech.asr",
    "rnnt_loss": "minispeech.asr",
    "tdt_loss": "minispeech.asr",
    "ctc_prefix_beam_search": "minispeech.asr",
    "ctc_forced_align": "minispeech.asr",
    "rnnt_greedy_decode": "minispeech.asr",
    "rnnt_beam_search": "minispeech.asr",
    "tdt_greedy_decode": "minispeech.asr",
    "PredictionNetwork": "minispeech.asr",
    "JointNetwork": "minispeech.asr",
    "NGramLM": "minispeech.asr",
    "CTCModel": "minispeech.asr",
    "TransducerModel": "minispeech.asr",
    "AEDModel": "minispeech.asr",
    "aed_greedy_decode": "minispeech.asr",
    "aed_beam_search": "minispeech.asr",
    # speaker
    "SpeakerModel": "minispeech.speaker",
    # diarization
    "diarize": "minispeech.diarization",
    "VADModel": "minispeech.diarization",
    "der": "minispeech.metrics",
    # enhancement
    "EnhancementModel": "minispeech.enhancement",
    "wiener_filter": "minispeech.enhancement",
    "spectral_subtraction": "minispeech.enhancement",
    "si_sdr": "minispeech.metrics",
    "stoi": "minispeech.metrics",
    # TTS
    "FastPitchModel": "minispeech.tts",
    "HifiGanModel": "minispeech.tts",
    "EnglishCharsTokenizer": "minispeech.tts",
    "Synthesizer": "minispeech.tts",
    "griffin_lim": "minispeech.tts",
    "mas": "minispeech.tts",
    "mcd": "minispeech.metrics",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'minispeech' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # cache: the next lookup skips __getattr__
    return value


def __dir__():
    return sorted(list(globals()) + __all__)
