"""SpeechLM: a SALM-style speech language model (audio encoder + adapter + small LM)."""

from minispeech.speechlm.adapter import ModalityAdapter
from minispeech.speechlm.lm import TransformerLM
from minispeech.speechlm.lm_model import TextLMModel
from minispeech.speechlm.lora import add_lora, merge_lora
from minispeech.speechlm.salm_model import SALMModel
from minispeech.speechlm.tokenizer import ChatTokenizer

__all__ = [
    "ChatTokenizer",
    "ModalityAdapter",
    "SALMModel",
    "TextLMModel",
    "TransformerLM",
    "add_lora",
    "merge_lora",
]
