"""Short diagnostic reports, in English and Chinese, written from the simulated findings.

The text carries real information: each finding's site (with side and level)
and the number of lesions, in the phrasing of a nuclear-medicine report. Every
report opens by saying the scan is synthetic. Only sites that hold a finding
are named; normal anatomy is described generically, so a site name in the
report always means a lesion there (the tests check both directions).
"""

from __future__ import annotations

from typing import Sequence

__all__ = ["bone_report", "thyroid_report", "SYNTHETIC_EN", "SYNTHETIC_ZH"]

SYNTHETIC_EN = "SYNTHETIC scan simulated by scintix (not a real patient)."
SYNTHETIC_ZH = "合成图像，由scintix模拟生成（非真实患者）。"


def _join_en(items: Sequence[str]) -> str:
    items = [f"the {s}" for s in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def bone_report(findings: Sequence) -> tuple[str, str]:
    """``(english, chinese)`` report for a whole-body bone scan with these findings."""
    mets = [f for f in findings if f.kind == "metastasis"]
    arth = [f for f in findings if f.kind == "arthritis"]
    frac = [f for f in findings if f.kind == "fracture"]
    en = [SYNTHETIC_EN, "Whole-body bone scintigraphy (99mTc-MDP), anterior and posterior views."]
    zh = [SYNTHETIC_ZH, "全身骨显像（99mTc-MDP），前位及后位。"]
    if mets:
        n = len(mets)
        en.append(
            f"Focal increased uptake in {_join_en([f.site for f in mets])} "
            f"({n} lesion{'s' if n > 1 else ''}), consistent with {'multiple ' if n > 1 else ''}bone metastas{'es' if n > 1 else 'is'}."
        )
        zh.append(f"{'、'.join(f.site_zh for f in mets)}见局灶性放射性浓聚（共{n}处），考虑{'多发' if n > 1 else ''}骨转移。")
    if arth:
        en.append(f"Increased uptake in {_join_en([f.site for f in arth])}, consistent with arthritis (degenerative or inflammatory joint disease).")
        zh.append(f"{'、'.join(f.site_zh for f in arth)}放射性增高，考虑关节炎性病变。")
    if frac:
        n = len(frac)
        en.append(f"Focal uptake in {_join_en([f.site for f in frac])}, consistent with {'healing fractures' if n > 1 else 'a healing fracture'} (benign).")
        zh.append(f"{'、'.join(f.site_zh for f in frac)}见局灶性放射性浓聚，考虑骨折（良性）。")
    if not findings:
        en.append("Symmetric physiological tracer distribution in the skeleton; kidneys and bladder visualised. No focal abnormal uptake.")
        zh.append("全身骨骼显影清晰，放射性分布对称，双肾及膀胱显影，未见异常放射性浓聚。")
        en.append("Impression: normal bone scan.")
        zh.append("印象：全身骨显像未见明显异常。")
    else:
        parts_en, parts_zh = [], []
        if mets:
            parts_en.append(f"{len(mets)} metastatic lesion{'s' if len(mets) > 1 else ''}")
            parts_zh.append(f"骨转移（{len(mets)}处）")
        if arth:
            parts_en.append("arthritis")
            parts_zh.append("关节炎")
        if frac:
            parts_en.append("benign fracture uptake")
            parts_zh.append("良性骨折")
        en.append("Impression: " + " and ".join(parts_en) + ".")
        zh.append("印象：" + "；".join(parts_zh) + "。")
    return " ".join(en), "".join(zh)


def thyroid_report(findings: Sequence) -> tuple[str, str]:
    """``(english, chinese)`` report for a thyroid scan with these findings."""
    en = [SYNTHETIC_EN, "Thyroid scintigraphy (99mTc-pertechnetate), anterior view."]
    zh = [SYNTHETIC_ZH, "甲状腺显像（99mTc-高锝酸盐），前位。"]
    kinds = {f.kind for f in findings}
    if "diffuse" in kinds:
        en.append("The gland is enlarged with diffusely and homogeneously increased uptake and low background, consistent with diffuse hyperfunction.")
        zh.append("甲状腺弥漫性肿大，放射性摄取弥漫性均匀增高，本底低，考虑甲状腺功能亢进（弥漫性）。")
    for f in findings:
        if f.kind == "hot_nodule":
            en.append(f"A hot (hyperfunctioning) nodule in the {f.site}.")
            zh.append(f"{f.site_zh}见热结节。")
        elif f.kind == "cold_nodule":
            en.append(f"A cold (photopenic) nodule in the {f.site}.")
            zh.append(f"{f.site_zh}见冷结节。")
    if not findings:
        en.append("Normal size and position of the gland; homogeneous uptake in both lobes. No nodules.")
        zh.append("甲状腺位置、大小及形态正常，放射性分布均匀，未见结节。")
        en.append("Impression: normal thyroid scan.")
        zh.append("印象：甲状腺显像未见异常。")
    else:
        en.append("Impression: " + ", ".join(sorted(kinds)).replace("_", " ") + ".")
        zh.append("印象：" + "、".join({"diffuse": "弥漫性甲亢", "hot_nodule": "热结节", "cold_nodule": "冷结节"}[k] for k in sorted(kinds)) + "。")
    return " ".join(en), "".join(zh)
