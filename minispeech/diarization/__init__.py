"""Speaker diarization: who spoke when (simulated conversations and RTTM so far)."""

from minispeech.diarization.rttm import Segment, read_rttm, rttm_lines, write_rttm
from minispeech.diarization.simulate import conversations, make_conversation
