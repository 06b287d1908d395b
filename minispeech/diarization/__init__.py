"""Speaker diarization: who spoke when. VAD (energy and a learned MarbleNet), windows
at several scales, speaker embeddings, NME-SC clustering, RTTM, simulated
conversations; DER is in minispeech/metrics/der.py."""

from minispeech.diarization.clustering import (
    NEMO_SETTINGS,
    cluster_embeddings,
    cosine_affinity,
    nmesc,
    spectral_clustering,
)
from minispeech.diarization.pipeline import (
    DiarizationError,
    diarize,
    diarize_files,
    oracle_vad,
)
from minispeech.diarization.rttm import (
    RTTMError,
    Segment,
    read_rttm,
    read_uem,
    rttm_lines,
    write_rttm,
)
from minispeech.diarization.simulate import (
    conversations,
    make_conversation,
    read_diarization_manifest,
    write_conversations,
)
from minispeech.diarization.vad import energy_vad, frame_f1, speech_segments
from minispeech.diarization.vad_model import VADModel
