"""The one result type of every simulator mode."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

__all__ = ["SimulatedScan", "SiteFinding"]


@dataclass
class SiteFinding:
    """What every simulated finding has: its mask id, kind and named site (English, Chinese, side).

    Each mode adds its own geometry (mm on a bone scan, pixels on CT, ...).
    """

    id: int  # the finding's value in the mask images
    kind: str
    site: str
    site_zh: str
    side: str


@dataclass
class SimulatedScan:
    """Images per view (counts or HU), masks per view (finding id per pixel), findings, labels, reports."""

    views: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]
    findings: list
    labels: list[str]
    report_en: str
    report_zh: str
    params: dict
    boxes: dict = field(default_factory=dict)  # view -> region -> (y0, x0, y1, x1), whole-body scans only

    def class_masks(self, classes: list[str]) -> dict[str, np.ndarray]:
        """Masks per view with pixel value = 1 + the finding kind's index in ``classes`` (0 = background).

        A kind not in ``classes`` (head CT's haemorrhage kinds under the single ``finding`` label) counts as class 1.
        """
        lut = np.zeros(256, np.uint8)
        for f in self.findings:
            lut[f.id] = classes.index(f.kind) + 1 if f.kind in classes else 1
        return {view: lut[np.asarray(m, np.uint8)] for view, m in self.masks.items()}

    def summary(self) -> dict:
        out = {"synthetic": True, "labels": self.labels, "findings": [asdict(f) for f in self.findings], "report_en": self.report_en, "report_zh": self.report_zh, "params": self.params}
        if self.boxes:
            out["boxes"] = self.boxes
        return out
