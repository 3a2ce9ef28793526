"""A parametric whole-body skeleton and soft-tissue phantom, projected to ANT and POST.

Geometry lives in millimetres in the patient frame: ``x`` towards the
patient's left, ``y`` down from the vertex. Every bone is a list of solid
primitives (capsules for long bones, ribs and clavicles, ellipses for skull,
vertebrae, pelvis) with an activity per unit area and a *depth* between 0
(anterior surface) and 1 (posterior surface). Projection weights a primitive
by ``exp(-mu * T * depth)`` in the anterior view and ``exp(-mu * T * (1 -
depth))`` in the posterior view (T = body thickness there), which is why the
spine and scapulae are brighter from behind and the sternum, knees and bladder
from the front. The posterior view is mirrored (seen from behind: the
patient's right is on the viewer's right), exactly as a gamma camera records it.

Proportions follow standard anthropometric ratios of stature (vertebral
levels, shoulder and hip breadth, limb lengths); each simulated patient gets
its own stature, frame width, fat thickness, arm pose, lateral offset and small
per-landmark jitter, so region finding cannot rely on fixed fractions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Primitive", "Site", "Phantom", "make_phantom", "project", "REGIONS"]

REGIONS = ("head", "thorax", "abdomen_pelvis", "legs")
ORDINAL = {1: "1st", 2: "2nd", 3: "3rd"}


@dataclass(frozen=True)
class Primitive:
    """A solid capsule (segment ``p0``-``p1`` of radius ``r``), ellipse (``p0`` centre, radii
    ``(rx, ry)`` in ``p1``), trapezoid ``trunk`` or Gaussian ``gauss`` (centre ``p0``, sigma ``r``)."""

    shape: str  # capsule | ellipse | trunk | gauss
    p0: tuple[float, float]
    p1: tuple[float, float]
    r: float
    value: float
    depth: float
    thickness: float  # body thickness (mm) at this level, for attenuation


@dataclass(frozen=True)
class Site:
    """A place a finding can sit: name in English and Chinese, centre (mm), depth, bone size."""

    name: str
    name_zh: str
    group: str  # skull | spine | rib | sternum | pelvis | shoulder_girdle | long_bone | joint
    x: float
    y: float
    depth: float
    thickness: float
    size: float  # typical bone half-width here (mm)
    side: str = ""  # right | left | ""


@dataclass
class Phantom:
    params: dict
    bones: list[Primitive] = field(default_factory=list)
    organs: list[Primitive] = field(default_factory=list)  # kidneys, bladder, injection site
    body: list[Primitive] = field(default_factory=list)  # soft-tissue outline
    sites: list[Site] = field(default_factory=list)
    boxes: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)  # mm: (y0, x0, y1, x1)


def _side(sign: float) -> tuple[str, str]:
    return ("left", "左侧") if sign > 0 else ("right", "右侧")


def make_phantom(rng: np.random.Generator) -> Phantom:
    """Draw one patient: anatomy, pose and physiological uptake."""
    H = float(np.clip(rng.normal(1690, 85), 1480, 1930))  # stature, mm
    wf = float(np.clip(rng.normal(1.0, 0.06), 0.86, 1.16))  # skeletal frame breadth
    fat = float(np.clip(rng.lognormal(0.0, 0.25), 0.6, 2.2))  # soft-tissue thickness factor
    pose = str(rng.choice(["sides", "abducted", "abdomen"], p=[0.55, 0.25, 0.2]))
    j = lambda s=0.012: float(rng.normal(0, s))  # noqa: E731 - per-landmark proportion jitter
    P = Phantom(params=dict(stature_mm=round(H, 1), frame=round(wf, 3), fat=round(fat, 3), arm_pose=pose))
    T_trunk, T_head, T_leg, T_arm = 190 * fat**0.6, 170.0, 120 * fat**0.5, 80 * fat**0.5
    bone = lambda *a: P.bones.append(Primitive(*a))  # noqa: E731

    # --- vertebral column: C1..C7, T1..T12, L1..L5, sacrum (levels as fractions of stature)
    y_c1, y_t1, y_l1, y_s1, y_s_end = (0.118 + j(0.005)) * H, (0.185 + j(0.006)) * H, (0.345 + j(0.008)) * H, (0.44 + j(0.008)) * H, (0.50 + j(0.008)) * H
    levels = [("C", 7, y_c1, y_t1), ("T", 12, y_t1, y_l1), ("L", 5, y_l1, y_s1)]
    vert_y = {}
    for letter, n, top, bottom in levels:
        step = (bottom - top) / n
        for k in range(n):
            yc = top + (k + 0.5) * step
            w = wf * {"C": 11.0, "T": 13.0 + k * 0.6, "L": 21.0 + k * 1.2}[letter]
            bone("ellipse", (0.0, yc), (w, step * 0.5), 0.0, 0.9, 0.72, T_trunk if letter != "C" else 110.0)
            vert_y[f"{letter}{k + 1}"] = (yc, w)
            P.sites.append(Site(f"{letter}{k + 1} vertebra", f"{letter}{k + 1}椎体", "spine", 0.0, yc, 0.72, T_trunk, w))
    bone("ellipse", (0.0, (y_s1 + y_s_end) / 2), (38 * wf, (y_s_end - y_s1) * 0.5), 0.0, 0.9, 0.7, T_trunk)
    P.sites.append(Site("sacrum", "骶骨", "spine", 0.0, (y_s1 + y_s_end) / 2, 0.7, T_trunk, 30 * wf))

    # --- skull and mandible
    skull_ry, skull_rx = (0.066 + j(0.003)) * H, (0.046 + j(0.002)) * H * wf**0.5
    skull_cy = skull_ry
    bone("ellipse", (0.0, skull_cy), (skull_rx, skull_ry), 0.0, 0.75, 0.5, T_head)
    bone("ellipse", (0.0, skull_cy * 0.95), (skull_rx - 9, skull_ry - 11), 0.0, -0.4, 0.5, T_head)  # diploe/brain: the vault is a rim
    bone("ellipse", (0.0, skull_cy + skull_ry * 0.78), (skull_rx * 0.62, skull_ry * 0.32), 0.0, 0.55, 0.3, T_head)  # facial bones / mandible
    P.sites.append(Site("skull", "颅骨", "skull", rng.uniform(-0.5, 0.5) * skull_rx, skull_cy * rng.uniform(0.6, 1.0), 0.5, T_head, 20.0))
    head_bottom = skull_cy + skull_ry * 1.1

    # --- shoulders, clavicles, sternum, scapulae
    half_sh = (0.118 + j(0.004)) * H * wf  # acromion half-breadth
    y_sh = y_t1 - 0.004 * H
    y_sternum0, y_sternum1 = y_t1 + 0.012 * H, (0.305 + j(0.006)) * H
    bone("capsule", (0.0, y_sternum0), (0.0, y_sternum1), 11 * wf, 0.9, 0.08, T_trunk)
    P.sites.append(Site("sternum", "胸骨", "sternum", 0.0, (y_sternum0 + 2 * y_sternum1) / 3, 0.08, T_trunk, 12.0))
    for s in (-1.0, 1.0):
        side, side_zh = _side(s)
        bone("capsule", (s * 18 * wf, y_sternum0), (s * half_sh * 0.92, y_sh - 0.006 * H), 7.0, 0.9, 0.2, T_trunk)
        P.sites.append(Site(f"{side} clavicle", f"{side_zh}锁骨", "shoulder_girdle", s * half_sh * 0.55, y_sternum0 - 0.002 * H, 0.2, T_trunk, 8.0, side))
        scap_c = (s * half_sh * 0.62, y_t1 + 0.05 * H)
        bone("ellipse", scap_c, (half_sh * 0.24, 0.05 * H), 0.0, 0.3, 0.9, T_trunk)
        P.sites.append(Site(f"{side} scapula", f"{side_zh}肩胛骨", "shoulder_girdle", scap_c[0], scap_c[1], 0.9, T_trunk, 20.0, side))

    # --- ribs 1..12: posterior arc out and down from the spine, anterior arc back towards the sternum
    rib_w_max = half_sh * (0.84 + j(0.02))
    rib_bottom = 0.0
    for k in range(1, 13):
        yv, _ = vert_y[f"T{k}"]
        lateral = rib_w_max * (0.55 + 0.45 * np.sin(np.pi * min(k, 9) / 16 + 0.35)) if k <= 10 else rib_w_max * (0.95 - 0.12 * (k - 10))
        drop = (0.014 + 0.0015 * k) * H
        for s in (-1.0, 1.0):
            side, side_zh = _side(s)
            pts_post = [(s * 14, yv), (s * lateral * 0.75, yv + drop * 0.35), (s * lateral, yv + drop)]
            for a, b in zip(pts_post[:-1], pts_post[1:]):
                bone("capsule", a, b, 4.6, 0.75, 0.8, T_trunk)
            if k <= 10:  # ribs 1-7 reach the sternum, 8-10 the costal margin; 11-12 float
                end_x = 20 * wf if k <= 7 else lateral * (0.45 + 0.04 * (k - 8))
                end_y = yv + drop + (0.012 + 0.002 * k) * H  # bony rib only: costal cartilage takes up no tracer
                mid = (s * (lateral * 0.92), yv + drop + (end_y - yv - drop) * 0.45)
                for a, b in ((pts_post[-1], mid), (mid, (s * end_x, end_y))):
                    bone("capsule", a, b, 4.2, 0.6, 0.25, T_trunk)
                rib_bottom = max(rib_bottom, end_y)
            rib_bottom = max(rib_bottom, yv + drop)
            P.sites.append(Site(f"{side} {ORDINAL.get(k, f'{k}th')} rib", f"{side_zh}第{k}肋", "rib", s * lateral * rng.uniform(0.6, 0.95), yv + drop * 0.7, 0.75, T_trunk, 5.0, side))

    # --- pelvis: iliac wings, ischium/pubis, femoral heads
    half_pelvis = (0.098 + j(0.004)) * H * wf
    y_crest = y_s1 - 0.02 * H  # iliac crest at L4
    y_hip = (0.478 + j(0.006)) * H
    y_pubis = y_hip + 0.022 * H
    for s in (-1.0, 1.0):
        side, side_zh = _side(s)
        il = (s * half_pelvis * 0.62, y_crest + 0.04 * H)
        bone("ellipse", il, (half_pelvis * 0.4, 0.045 * H), 0.0, 0.5, 0.6, T_trunk)
        P.sites.append(Site(f"{side} ilium", f"{side_zh}髂骨", "pelvis", il[0], il[1], 0.6, T_trunk, 25.0, side))
        isch = (s * half_pelvis * 0.42, y_pubis - 0.004 * H)
        bone("ellipse", isch, (half_pelvis * 0.26, 0.022 * H), 0.0, 0.6, 0.45, T_trunk)
        P.sites.append(Site(f"{side} ischiopubic ramus", f"{side_zh}坐骨耻骨支", "pelvis", isch[0], isch[1], 0.45, T_trunk, 14.0, side))
    pelvis_bottom = y_pubis + 0.024 * H
    bone("capsule", (-12.0, y_pubis), (12.0, y_pubis), 8.0, 0.8, 0.15, T_trunk)  # symphysis

    # --- legs: hip, femur, knee, tibia, ankle, foot
    half_hip = half_pelvis * 0.86
    y_knee, y_ankle = (0.715 + j(0.008)) * H, (0.955 + j(0.006)) * H
    knee_x = half_hip * rng.uniform(0.48, 0.62)
    ankle_x = knee_x * rng.uniform(0.75, 1.05)
    for s in (-1.0, 1.0):
        side, side_zh = _side(s)
        hip = (s * half_hip, y_hip)
        knee, ankle = (s * knee_x, y_knee), (s * ankle_x, y_ankle)
        bone("ellipse", hip, (17.0, 17.0), 0.0, 0.95, 0.5, T_trunk)
        bone("capsule", hip, knee, 11.0 * wf, 0.62, 0.5, T_leg)
        bone("ellipse", knee, (26.0 * wf, 20.0), 0.0, 0.9, 0.35, T_leg)
        bone("capsule", knee, ankle, 9.0 * wf, 0.58, 0.35, T_leg)
        bone("ellipse", ankle, (18.0, 14.0), 0.0, 0.9, 0.5, T_leg)
        bone("capsule", (ankle[0], ankle[1] + 10), (ankle[0] + s * 8, H - 8), 14.0, 0.7, 0.7, T_leg)  # foot (seen end-on)
        P.sites += [
            Site(f"{side} hip", f"{side_zh}髋关节", "joint", hip[0], hip[1], 0.5, T_trunk, 17.0, side),
            Site(f"{side} femur", f"{side_zh}股骨", "long_bone", hip[0] * 0.9 + knee[0] * 0.1, y_hip + 0.05 * H, 0.5, T_leg, 12.0, side),
            Site(f"{side} knee", f"{side_zh}膝关节", "joint", knee[0], knee[1], 0.35, T_leg, 24.0, side),
            Site(f"{side} ankle", f"{side_zh}踝关节", "joint", ankle[0], ankle[1], 0.5, T_leg, 16.0, side),
        ]

    # --- arms: pose decides where elbows and hands fall
    humerus, forearm = (0.186 + j(0.004)) * H, (0.146 + j(0.004)) * H
    shoulder_y = y_sh + 0.008 * H
    arm_extent = 0.0
    for s in (-1.0, 1.0):
        side, side_zh = _side(s)
        sh = (s * half_sh, shoulder_y)
        if pose == "abducted":
            a1 = np.deg2rad(rng.uniform(14, 26))
            a2 = a1 + np.deg2rad(rng.uniform(-4, 6))
        else:
            a1 = np.deg2rad(rng.uniform(3, 10))
            a2 = np.deg2rad(rng.uniform(2, 8)) if pose == "sides" else None
        el = (sh[0] + s * humerus * np.sin(a1), sh[1] + humerus * np.cos(a1))
        if a2 is None:  # forearm across the lower abdomen, hand near the midline
            wr = (s * rng.uniform(0.03, 0.07) * H, el[1] + forearm * rng.uniform(0.45, 0.65))
        else:
            wr = (el[0] + s * forearm * np.sin(a2), el[1] + forearm * np.cos(a2))
        bone("ellipse", sh, (19.0, 19.0), 0.0, 0.95, 0.5, T_trunk)
        bone("capsule", sh, el, 9.0 * wf, 0.55, 0.5, T_arm)
        bone("capsule", el, wr, 7.5 * wf, 0.5, 0.5, T_arm)
        bone("ellipse", el, (14.0, 12.0), 0.0, 0.7, 0.5, T_arm)
        bone("ellipse", wr, (12.0, 10.0), 0.0, 0.75, 0.5, T_arm)
        hand = (wr[0] + (wr[0] - el[0]) * 0.35, wr[1] + (wr[1] - el[1]) * 0.35)
        bone("capsule", wr, hand, 16.0, 0.45, 0.5, T_arm)
        arm_extent = max(arm_extent, abs(el[0]), abs(wr[0]), abs(hand[0]))
        P.body += [Primitive("capsule", sh, el, 36 * fat**0.5, 1.0, 0.5, T_arm), Primitive("capsule", el, hand, 30 * fat**0.5, 1.0, 0.5, T_arm)]
        P.sites += [
            Site(f"{side} shoulder", f"{side_zh}肩关节", "joint", sh[0], sh[1], 0.5, T_trunk, 19.0, side),
            Site(f"{side} humerus", f"{side_zh}肱骨", "long_bone", sh[0] * 0.7 + el[0] * 0.3, sh[1] * 0.7 + el[1] * 0.3, 0.5, T_arm, 9.0, side),
            Site(f"{side} elbow", f"{side_zh}肘关节", "joint", el[0], el[1], 0.5, T_arm, 14.0, side),
            Site(f"{side} wrist", f"{side_zh}腕关节", "joint", wr[0], wr[1], 0.5, T_arm, 12.0, side),
        ]
        P.params[f"{side}_antecubital"] = (round(float(el[0]), 1), round(float(el[1]), 1))

    # --- soft tissue outline (uptake per unit area ~ thickness)
    trunk_half = half_sh * 0.78 + 28 * (fat - 1) + 12
    hip_half = half_pelvis + 30 * (fat - 1) + 22
    P.body += [
        Primitive("ellipse", (0.0, skull_cy), (skull_rx + 7, skull_ry + 7), 0.0, 1.0, 0.5, T_head),
        Primitive("capsule", (0.0, head_bottom - 20), (0.0, y_t1), 42.0 * fat**0.4, 1.0, 0.5, 110.0),
        Primitive("capsule", (-half_sh * 0.75, shoulder_y + 15), (half_sh * 0.75, shoulder_y + 15), 40.0, 1.0, 0.5, T_trunk),
        Primitive("trunk", (trunk_half, shoulder_y + 5), (hip_half, y_pubis), 0.0, 1.0, 0.5, T_trunk),
    ]
    for s in (-1.0, 1.0):
        P.body += [
            Primitive("capsule", (s * half_hip * 0.9, y_pubis), (s * knee_x, y_knee), 62 * fat**0.6, 1.0, 0.5, T_leg),
            Primitive("capsule", (s * knee_x, y_knee), (s * ankle_x, y_ankle), 42 * fat**0.5, 1.0, 0.5, T_leg),
        ]

    # --- physiological uptake: kidneys, bladder (sometimes very hot), injection site
    for s in (-1.0, 1.0):
        P.organs.append(Primitive("ellipse", (s * (50 + 10 * wf), vert_y["L1"][0] + j(0.004) * H), (24.0, 48.0), 0.0, rng.uniform(0.15, 0.5), 0.75, T_trunk))
    bladder = rng.uniform(0.2, 3.0) if rng.random() < 0.85 else rng.uniform(3.0, 8.0)
    P.organs.append(Primitive("ellipse", (j(0.004) * H, y_pubis - 0.02 * H), (rng.uniform(28, 45), rng.uniform(22, 35)), 0.0, bladder, 0.3, T_trunk))
    P.params["bladder_uptake"] = round(float(bladder), 3)
    if rng.random() < 0.3:  # tracer extravasated at the injection site (antecubital fossa)
        side = str(rng.choice(["right", "left"]))
        ex, ey = P.params[f"{side}_antecubital"]
        P.organs.append(Primitive("ellipse", (ex, ey), (6.0, 6.0), 0.0, rng.uniform(3.0, 12.0), 0.2, T_arm))
        P.params["injection_site"] = side

    # --- ground-truth region boxes (mm, patient frame): bone extents of each region
    P.boxes = {
        "head": (0.0, -skull_rx, head_bottom, skull_rx),
        "thorax": (y_sternum0 - 0.012 * H, -rib_w_max - 4.6, rib_bottom + 4.6, rib_w_max + 4.6),
        "abdomen_pelvis": (rib_bottom + 4.6, -half_pelvis - 5, pelvis_bottom, half_pelvis + 5),
        "legs": (pelvis_bottom, -max(half_hip, knee_x, ankle_x) - 30, H, max(half_hip, knee_x, ankle_x) + 30),
    }
    P.params["body_half_width_mm"] = round(float(max(trunk_half, arm_extent + 30)), 1)
    return P


def _render(canvas_a: np.ndarray, canvas_p: np.ndarray, prim: Primitive, to_px, px: float, mu: float, scale: float = 1.0) -> None:
    """Add one primitive to both (unmirrored) canvases, weighted by attenuation towards each camera."""
    w_a = np.exp(-mu * prim.thickness * prim.depth)
    w_p = np.exp(-mu * prim.thickness * (1.0 - prim.depth))
    h, w = canvas_a.shape
    if prim.shape == "trunk":  # trapezoid from shoulder width to hip width
        (ht, y0), (hb, y1) = prim.p0, prim.p1
        r0, r1 = int(max(0, np.floor(to_px(0, y0)[0]))), int(min(h, np.ceil(to_px(0, y1)[0])))
        if r1 <= r0:
            return
        rows = np.arange(r0, r1)
        ymm = (rows - to_px(0, 0)[0]) * px
        half = ht + (hb - ht) * np.clip((ymm - y0) / max(y1 - y0, 1), 0, 1)
        cols = np.arange(w)
        xmm = (cols - to_px(0, 0)[1]) * px
        m = np.clip((half[:, None] - np.abs(xmm[None, :])) / px + 0.5, 0, 1)
        canvas_a[r0:r1] += prim.value * scale * w_a * m
        canvas_p[r0:r1] += prim.value * scale * w_p * m
        return
    if prim.shape == "gauss":  # a focal finding: Gaussian of sigma r (mm), peak value
        (xa, ya), rad = prim.p0, 3.0 * prim.r
        lo_x, hi_x, lo_y, hi_y = xa - rad, xa + rad, ya - rad, ya + rad
    elif prim.shape == "capsule":
        (xa, ya), (xb, yb), rad = prim.p0, prim.p1, prim.r
        lo_x, hi_x, lo_y, hi_y = min(xa, xb) - rad, max(xa, xb) + rad, min(ya, yb) - rad, max(ya, yb) + rad
    else:
        (xa, ya), (rx, ry) = prim.p0, prim.p1
        lo_x, hi_x, lo_y, hi_y = xa - rx, xa + rx, ya - ry, ya + ry
    r0, c0 = to_px(lo_x, lo_y)
    r1, c1 = to_px(hi_x, hi_y)
    r0, r1 = int(max(0, np.floor(r0) - 1)), int(min(h, np.ceil(r1) + 2))
    c0, c1 = int(max(0, np.floor(c0) - 1)), int(min(w, np.ceil(c1) + 2))
    if r1 <= r0 or c1 <= c0:
        return
    oy, ox = to_px(0, 0)
    yy = (np.arange(r0, r1)[:, None] - oy) * px
    xx = (np.arange(c0, c1)[None, :] - ox) * px
    if prim.shape == "gauss":
        m = np.exp(-((xx - xa) ** 2 + (yy - ya) ** 2) / (2 * prim.r**2))
    elif prim.shape == "capsule":
        dx, dy = xb - xa, yb - ya
        L2 = dx * dx + dy * dy
        t = np.clip(((xx - xa) * dx + (yy - ya) * dy) / L2, 0, 1) if L2 > 0 else np.zeros_like(xx + yy)
        dist = np.hypot(xx - (xa + t * dx), yy - (ya + t * dy))
        m = np.clip((rad - dist) / px + 0.5, 0, 1)
    else:
        d = np.hypot((xx - xa) / max(rx, 1e-3), (yy - ya) / max(ry, 1e-3))
        m = np.clip((1 - d) * min(rx, ry) / px + 0.5, 0, 1)
    canvas_a[r0:r1, c0:c1] += prim.value * scale * w_a * m
    canvas_p[r0:r1, c0:c1] += prim.value * scale * w_p * m


def project(
    phantom: Phantom,
    shape: tuple[int, int] = (1024, 256),
    pixel_mm: float = 2.26,
    top_px: float = 30.0,
    offset_mm: float = 0.0,
    soft_tissue: float = 0.09,
    mu: float = 0.006,
    extra: list[Primitive] | None = None,
) -> tuple[np.ndarray, np.ndarray, callable]:
    """Expected (noise-free) ANT and POST activity images and the mm -> pixel map of the ANT view.

    ``extra`` primitives (lesions) are drawn like bones. The posterior image is
    returned mirrored, as acquired.
    """
    h, w = shape
    cx = (w - 1) / 2.0 + offset_mm / pixel_mm

    def to_px(x: float, y: float) -> tuple[float, float]:  # anterior view: patient's left on the viewer's right
        return top_px + y / pixel_mm, cx + x / pixel_mm

    ant, post = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
    body_a, body_p = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
    for prim in phantom.body:
        _render(body_a, body_p, prim, to_px, pixel_mm, 0.0)
    body = np.minimum(body_a, 1.0)  # union of the outline pieces
    ant += soft_tissue * body
    post += soft_tissue * body
    for prim in phantom.bones + phantom.organs + list(extra or []):
        _render(ant, post, prim, to_px, pixel_mm, mu)
    return ant, post[:, ::-1].copy(), to_px


def box_to_px(box_mm: tuple[float, float, float, float], to_px, width: int, posterior: bool = False) -> tuple[int, int, int, int]:
    """A patient-frame mm box as an integer pixel box ``(y0, x0, y1, x1)`` (end-exclusive) in one view."""
    y0, x0 = to_px(box_mm[1], box_mm[0])
    y1, x1 = to_px(box_mm[3], box_mm[2])
    y0, y1, x0, x1 = int(round(y0)), int(round(y1)), int(round(x0)), int(round(x1))
    if posterior:
        x0, x1 = width - x1, width - x0
    return y0, x0, y1, x1
