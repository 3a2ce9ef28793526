"""A local Hugging Face text model folder (e.g. a Chinese MacBERT the user keeps on disk), never downloaded.

Both loaders pass ``local_files_only=True``; a folder that is missing or
holds no model is a one-line error naming it. (transformers 5.x ignores
``BertTokenizer(vocab_file=...)``; ``from_pretrained(folder)`` is the form
that reads the folder's vocabulary.)
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["load_hf_tokenizer", "load_hf_model"]


def _check(folder: str | Path) -> Path:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such model folder (text.hf_model names a local Hugging Face folder; nothing is downloaded)")
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder}: not a Hugging Face model folder (no config.json)")
    return folder


def _transformers():
    try:
        import transformers
    except ImportError:
        raise ImportError("text.hf_model needs the transformers package: pip install transformers") from None
    return transformers


def _load(folder: str | Path, what: str):
    folder = _check(folder)
    tf = _transformers()
    loader = tf.AutoTokenizer if what == "tokenizer" else tf.AutoModel
    try:
        return loader.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{folder}: cannot load its {what} ({str(exc).splitlines()[0][:200]})") from None


def load_hf_tokenizer(folder: str | Path):
    return _load(folder, "tokenizer")


def load_hf_model(folder: str | Path):
    return _load(folder, "model")
