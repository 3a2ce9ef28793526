"""Helpers of the robustness tests: the tiny data, the in-process CLI call, the one-line error check."""

from __future__ import annotations

from pathlib import Path

from scintix.cli.__main__ import main

FAST = ["-o", "model.name=small_cnn", "-o", "data.image_size=[24,16]", "-o", "train.batch_size=8", "-o", "train.channels_last=false", "-o", "train.tensorboard=false",
        "-o", "eval.n_bootstrap=20", "-o", "eval.figures=false", "-o", "data.split.ratios=[0.5,0.3,0.2]", "-o", "data.views=null", "-o", "data.view_filter=ant", "-o", "train.progress=false"]


def tiny_data(root: Path) -> Path:
    """12 patients x (ant, post) of 24x16 PNGs; label = a bright square; a manifest."""
    from corpus import good_png

    rows = ["path,label,patient_id,view"]
    for p in range(12):
        for view in ("ant", "post"):
            good_png(root / f"p{p}_{view}.png", seed=2 * p + (view == "post"), lesion=p % 3 == 0)
            rows.append(f"p{p}_{view}.png,{int(p % 3 == 0)},P{p},{view}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root / "manifest.csv"


def cli(capsys, *args: str) -> tuple[int, str, list[str]]:
    """Run the CLI in-process: (exit code, stdout, stderr lines); never a traceback, never pydicom's own noise."""
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out, err
    assert "pydicom" not in err.lower() or "pydicom said" in err, err  # pydicom's warnings go into our one line, not beside it
    return code, out, [ln for ln in err.splitlines() if ln.strip()]


def one_error(lines: list[str], *needles: str) -> str:
    """The single ``scintix: error:`` line, which names every needle."""
    errors = [ln for ln in lines if ln.startswith("scintix: error:")]
    assert len(errors) == 1, lines
    for n in needles:
        assert n in errors[0], (n, errors[0])
    return errors[0]
