"""What every reader of the data layer shares: the read error, ``file#fragment`` paths, DICOM sniffing.

Kept apart so that the format readers (:mod:`.io`, :mod:`.dicom`) and the
manifest import it without importing each other in a circle.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["ImageReadError", "split_fragment", "looks_like_dicom"]


class ImageReadError(Exception):
    """An image that cannot be read; ``str(err)`` is ``"<path>: <cause>"``."""

    def __init__(self, path: str | Path, cause: str) -> None:
        self.path = str(path)
        self.cause = cause
        super().__init__(f"{path}: {cause}")


def split_fragment(path: str | Path) -> tuple[Path, str | None, int | None]:
    """Split a path with a fragment into (file, fragment, index).

    ``file.npz#split/17`` gives ``(file.npz, "split", 17)``; any other file's
    fragment names a view of a DICOM NM file, ``scan.dcm#ant`` gives
    ``(scan.dcm, "ant", None)``; plain paths give ``(path, None, None)``. A
    path that exists as written is a path, ``#`` and all (``case#12.png``).
    """
    text = str(path)
    if "#" not in text or Path(text).exists():
        return Path(text), None, None
    file, frag = text.rsplit("#", 1)
    if not file.lower().endswith(".npz"):
        if not frag:
            raise ImageReadError(path, "empty view name after '#'")
        return Path(file), frag, None
    split, _, index = frag.partition("/")
    if not split or not index.isdigit():
        raise ImageReadError(path, "an npz reference must look like 'file.npz#<split>/<index>'")
    return Path(file), split, int(index)


def looks_like_dicom(file: Path) -> bool:
    """True when ``file`` has the DICOM preamble (``DICM`` at byte 128), whatever its name."""
    with open(file, "rb") as fh:
        head = fh.read(132)
    return len(head) == 132 and head[128:132] == b"DICM"
