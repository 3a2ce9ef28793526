"""Report tokenizers built from the training reports, saved with the run, nothing downloaded.

``char`` (Chinese: one token per character, as Chinese BERTs tokenise) and
``word`` (English: lower-cased words and numbers, each punctuation mark its
own token). ``auto`` picks ``char`` when CJK characters make up a third or
more of the training text's letters. The vocabulary holds the tokens seen at
least ``min_freq`` times in the training reports (most frequent first, then
alphabetical, so the same reports always give the same ids); anything else
is ``[UNK]``. Every encoded report starts with ``[CLS]`` and is cut to
``max_length`` tokens (``[CLS]`` included); shorter ones are padded with
``[PAD]`` (id 0). An empty or missing report encodes to ``[CLS]`` alone with
``has_text = False``: the model then leaves the text path out.

:class:`HFTokenizer` wraps a local Hugging Face tokenizer folder behind the
same interface (``local_files_only``).

>>> tok = build_tokenizer(["Lesion in the left rib.", "No lesion."], kind="word")
>>> tok.tokens("lesion in the right rib")
['[CLS]', 'lesion', 'in', 'the', '[UNK]', 'rib']
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import torch

__all__ = ["Tokenizer", "HFTokenizer", "build_tokenizer", "load_tokenizer", "detect_kind", "SPECIALS", "KINDS"]

SPECIALS = ("[PAD]", "[UNK]", "[CLS]")
PAD, UNK, CLS = 0, 1, 2
KINDS = ("auto", "char", "word")
_WORD = re.compile(r"[a-z0-9]+(?:[.'][a-z0-9]+)*|[^\sa-z0-9]", re.IGNORECASE)
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def _normalise(text: str | None) -> str:
    # NFKC folds full-width letters, digits and punctuation (common in Chinese reports) to one form
    return unicodedata.normalize("NFKC", text or "").strip()


def detect_kind(texts: Iterable[str]) -> str:
    """``char`` when CJK characters are a third or more of the letters, else ``word``."""
    cjk = letters = 0
    for t in texts:
        t = _normalise(t)
        cjk += len(_CJK.findall(t))
        letters += sum(ch.isalnum() for ch in t)
    return "char" if letters and cjk / letters >= 1 / 3 else "word"


def _split(text: str, kind: str) -> list[str]:
    text = _normalise(text)
    if kind == "char":
        return [ch for ch in text if not ch.isspace()]
    return [w.lower() for w in _WORD.findall(text)]


class Tokenizer:
    """A fixed vocabulary and a splitting rule; ``encode`` gives padded id tensors."""

    def __init__(self, vocab: Sequence[str], kind: str, max_length: int = 64) -> None:
        if kind not in ("char", "word"):
            raise ValueError(f"tokenizer kind {kind!r}: char or word")
        if tuple(vocab[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"a vocabulary starts with {SPECIALS}")
        if max_length < 2:
            raise ValueError(f"text.max_length={max_length}: at least 2 ([CLS] and one token)")
        self.vocab = list(vocab)
        self.kind = kind
        self.max_length = int(max_length)
        self.index = {t: i for i, t in enumerate(self.vocab)}

    def __len__(self) -> int:
        return len(self.vocab)

    def tokens(self, text: str | None) -> list[str]:
        """The tokens the model sees (after truncation), unknown ones as ``[UNK]``."""
        return [self.vocab[i] for i in self.ids(text)]

    def pieces(self, text: str | None) -> list[str]:
        """The text's own pieces at the positions of :meth:`tokens` (unknown ones as written), for display."""
        return ["[CLS]", *_split(text or "", self.kind)][: self.max_length]

    def ids(self, text: str | None) -> list[int]:
        return [CLS, *(self.index.get(t, UNK) for t in _split(text or "", self.kind))][: self.max_length]

    def encode(self, texts: Sequence[str | None]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(ids (B, L), padding (B, L) True at pads, has_text (B,))``; L = the longest report in the batch."""
        rows = [self.ids(t) for t in texts]
        length = max((len(r) for r in rows), default=1)
        ids = torch.full((len(rows), length), PAD, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        has_text = torch.tensor([len(r) > 1 for r in rows], dtype=torch.bool)
        return ids, ids == PAD, has_text

    def to_dict(self) -> dict:
        return {"type": "scintix", "kind": self.kind, "max_length": self.max_length, "vocab": self.vocab}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=0), encoding="utf-8")

    def __repr__(self) -> str:
        return f"Tokenizer(kind={self.kind!r}, vocab={len(self)}, max_length={self.max_length})"


def build_tokenizer(texts: Iterable[str | None], kind: str = "auto", max_length: int = 64, min_freq: int = 1, max_vocab: int = 20000) -> Tokenizer:
    """A vocabulary from ``texts`` (the training reports only: validation words stay unknown, as new patients' would)."""
    texts = [t for t in texts if t]
    if kind not in KINDS:
        raise ValueError(f"text.tokenizer={kind!r}: one of {', '.join(KINDS)}")
    if kind == "auto":
        kind = detect_kind(texts)
    counts = Counter(tok for t in texts for tok in _split(t, kind))
    kept = sorted((t for t, c in counts.items() if c >= min_freq and t not in SPECIALS), key=lambda t: (-counts[t], t))
    return Tokenizer([*SPECIALS, *kept[: max(0, max_vocab - len(SPECIALS))]], kind, max_length)


class HFTokenizer:
    """A local Hugging Face tokenizer folder (``local_files_only``) with :class:`Tokenizer`'s interface."""

    def __init__(self, folder: str | Path, max_length: int = 64) -> None:
        from .hf import load_hf_tokenizer

        self.folder = str(folder)
        self.max_length = int(max_length)
        self.tok = load_hf_tokenizer(folder)
        self.kind = "hf"

    def __len__(self) -> int:
        return len(self.tok)

    def ids(self, text: str | None) -> list[int]:
        text = _normalise(text)
        if not text:
            return [self.tok.cls_token_id if self.tok.cls_token_id is not None else 0]
        return list(self.tok(text, truncation=True, max_length=self.max_length)["input_ids"])

    def tokens(self, text: str | None) -> list[str]:
        return self.tok.convert_ids_to_tokens(self.ids(text))

    pieces = tokens

    def encode(self, texts: Sequence[str | None]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rows = [self.ids(t) for t in texts]
        length = max((len(r) for r in rows), default=1)
        pad = self.tok.pad_token_id or 0
        ids = torch.full((len(rows), length), pad, dtype=torch.long)
        padding = torch.ones((len(rows), length), dtype=torch.bool)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
            padding[i, : len(r)] = False
        has_text = torch.tensor([bool(_normalise(t)) for t in texts], dtype=torch.bool)
        return ids, padding, has_text

    def to_dict(self) -> dict:
        return {"type": "hf", "folder": self.folder, "max_length": self.max_length}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=0), encoding="utf-8")


def load_tokenizer(path: str | Path) -> Tokenizer | HFTokenizer:
    """A tokenizer saved with a run; a missing or damaged file is a one-line error naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no tokenizer (a text model's run folder holds the one built from its training reports)")
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        if d.get("type") == "hf":
            return HFTokenizer(d["folder"], d.get("max_length", 64))
        return Tokenizer(d["vocab"], d["kind"], d.get("max_length", 64))
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: damaged tokenizer file ({type(exc).__name__}: {exc})") from None
