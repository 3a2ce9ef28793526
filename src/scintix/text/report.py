"""The report as a text-guided model reads it: optionally opened by the view of the image being segmented.

A whole-body report names sites by the patient's side ("right 5th rib"), but
the two views show that side on opposite sides of the image: the anterior view
has the patient's right on the image's left, the posterior view on its right.
A model that segments one view at a time cannot map a side to a position
unless it knows the view; ``text.view_prefix`` opens each report with it
(``"[ANT] ..."``), in training and in every inference path alike. Views stacked
as channels (``data.views``) are one input: no prefix.
"""

from __future__ import annotations

__all__ = ["model_report"]


def model_report(report: str | None, view: str | None, view_prefix: bool) -> str | None:
    """``report`` opened by ``[VIEW]`` when asked and both are known; an absent report stays absent (the image-only path)."""
    text = (report or "").strip()
    if not text:
        return None
    if view_prefix and view:
        return f"[{view.strip().upper()}] {text}"
    return text
