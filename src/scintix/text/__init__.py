"""The report text path (P4): tokenizers built from training reports, text encoders, offline only."""

from .tokenizer import (
    HFTokenizer,
    Tokenizer,
    build_tokenizer,
    detect_kind,
    load_tokenizer,
)

__all__ = ["Tokenizer", "HFTokenizer", "build_tokenizer", "load_tokenizer", "detect_kind"]
