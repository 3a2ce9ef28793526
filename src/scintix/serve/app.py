"""The FastAPI app: ``create_app(settings)`` loads the runs once and serves one page and a JSON API.

Safe by default: binds 127.0.0.1 (``scintix serve`` refuses another host
unless told); uploads capped in bytes and pixels, typed by content, stored
under random names in a private temporary folder and deleted after the
request; a request that runs past ``timeout_s`` answers 504; no file name,
patient name, ID or birth date in responses or logs (log lines carry the
model, the file type, the size, the status and the time); run folders are
only read; an optional token guards the API.
"""

# no "from __future__ import annotations": FastAPI reads the endpoint annotations at run time, and the types are imported inside create_app

import asyncio
import io
import logging
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from .._optional import require
from .service import VIEWS, analyse, dicom_outputs, load_served
from .uploads import UploadError, UploadLimits, store_upload

__all__ = ["ServeSettings", "create_app"]

log = logging.getLogger("scintix.serve")
PAGE = Path(__file__).with_name("page.html")


@dataclass
class ServeSettings:
    """Everything the server needs, in one object."""

    runs: list[str]
    engine: str = "torch"  # torch | onnx (the runs' checked exports)
    limits: UploadLimits = field(default_factory=UploadLimits)
    timeout_s: float = 60.0
    token: str | None = None  # when set, /api/* needs "Authorization: Bearer <token>"
    cam_methods: tuple[str, ...] = ("gradcam", "gradcam++", "occlusion")
    channels_last: str | bool = "auto"  # torch models: auto (timed at start-up) | true | false


def create_app(settings: ServeSettings):
    """The app with every run of ``settings.runs`` loaded (a run that cannot be loaded is a one-line error now, not at the first request)."""
    require("fastapi")
    from fastapi import (
        Depends,
        FastAPI,
        File,
        Form,
        Header,
        HTTPException,
        Request,
        UploadFile,
    )
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import HTMLResponse, JSONResponse, Response

    if not settings.runs:
        raise ValueError("serve: name at least one run folder")
    served = load_served(settings.runs, settings.engine, settings.channels_last)
    work = Path(tempfile.mkdtemp(prefix="scintix-serve-"))
    app = FastAPI(title="scintix", version=__import__("scintix").__version__,
                  description="Research tool: predictions, heat maps and DICOM outputs for one scan. NOT FOR DIAGNOSTIC USE.")
    app.state.settings, app.state.served, app.state.work = settings, served, work

    def check_token(authorization: str | None = Header(default=None)) -> None:
        if settings.token and authorization != f"Bearer {settings.token}":
            raise HTTPException(401, "missing or wrong token (Authorization: Bearer ...)")

    @app.exception_handler(HTTPException)
    async def one_line(request: Request, exc: HTTPException):  # {"error": "..."}: one line, always
        return JSONResponse({"error": " ".join(str(exc.detail).split())}, status_code=exc.status_code)

    def pick(model: str | None):
        if model is None or model == "":
            if len(served) == 1:
                return next(iter(served.values()))
            raise HTTPException(400, f"several models are served; name one of {sorted(served)}")
        if model not in served:
            raise HTTPException(404, f"no model {model!r}; served: {sorted(served)}")
        return served[model]

    async def receive(file: UploadFile) -> tuple[Path, str, int]:
        data = await file.read(settings.limits.max_bytes + 1)  # never more than the limit in memory
        try:
            path, kind = await run_in_threadpool(store_upload, data, work, settings.limits)
        except UploadError as exc:
            raise HTTPException(exc.status, str(exc)) from None
        return path, kind, len(data)

    async def compute(fn, *args):
        try:
            return await asyncio.wait_for(run_in_threadpool(fn, *args), settings.timeout_s)
        except asyncio.TimeoutError:
            raise HTTPException(504, f"the model took longer than {settings.timeout_s:g} s") from None
        except (ValueError, OSError) as exc:
            raise HTTPException(422, str(exc).replace(str(work), "upload")) from None

    def check_options(method: str | None, view: str | None) -> None:
        if method and method not in settings.cam_methods:
            raise HTTPException(400, f"unknown heat-map method {method!r}; choose from {list(settings.cam_methods)}")
        if view and view not in VIEWS:
            raise HTTPException(400, f"unknown view {view!r}; choose from {list(VIEWS)} (or leave it out)")

    async def handle(file: UploadFile, model: str | None, method: str | None, view: str | None, report: str | None = None):
        start = time.perf_counter()
        sr = pick(model)
        check_options(method, view)
        path, kind, size = await receive(file)
        status = 200
        try:
            out = await compute(analyse, sr, path, method, view or None, report)
            if not out["results"]:
                status = 422
            return JSONResponse(out, status_code=status)
        except HTTPException as exc:
            status = exc.status_code
            raise
        finally:
            path.unlink(missing_ok=True)
            log.info("model=%s type=%s bytes=%d method=%s status=%d ms=%.0f", sr.id, kind, size, method or "-", status, 1000 * (time.perf_counter() - start))

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page():
        return PAGE.read_text(encoding="utf-8")

    @app.get("/api/health")
    def health():
        return {"status": "ok", "models": len(served)}

    @app.get("/api/models", dependencies=[Depends(check_token)])
    def models():
        return {"models": [s.info for s in served.values()], "cam_methods": list(settings.cam_methods),
                "limits": {"max_bytes": settings.limits.max_bytes, "max_pixels": settings.limits.max_pixels}, "notice": "NOT FOR DIAGNOSTIC USE"}

    @app.post("/api/predict", dependencies=[Depends(check_token)])
    async def predict(file: UploadFile = File(...), model: str | None = Form(None), view: str | None = Form(None), report: str | None = Form(None)):
        """Calibrated probabilities and the decision at the run's validation threshold, per view. ``view`` (ant/post) names the
        view of an upload whose header does not say (needed to crop a whole-body PNG for a chest-side model). ``report``: the
        scan's report, for a text-guided segmentation run (without one it reads the image alone)."""
        return await handle(file, model, None, view, report)

    @app.post("/api/explain", dependencies=[Depends(check_token)])
    async def explain(file: UploadFile = File(...), model: str | None = Form(None), method: str = Form("gradcam"), view: str | None = Form(None),
                      report: str | None = Form(None)):
        """As /api/predict, plus a heat map per view (RGBA PNG, base64) to lay over the image."""
        return await handle(file, model, method, view, report)

    @app.post("/api/dicom", dependencies=[Depends(check_token)])
    async def dicom(file: UploadFile = File(...), model: str | None = Form(None), deidentify: bool = Form(False), method: str | None = Form(None)):
        """A zip of DICOM outputs for a DICOM upload: the finding SR; for segmentation the lesion SEG and an overlay Secondary
        Capture; for classification with ``method`` a heat-map Secondary Capture."""
        sr = pick(model)
        check_options(method, None)
        path, kind, _ = await receive(file)
        out_dir = Path(tempfile.mkdtemp(dir=work))
        try:
            if kind != "dicom":
                raise HTTPException(415, "DICOM outputs need a DICOM upload")
            if method and not sr.info["explainable"]:
                raise HTTPException(422, "heat maps need the torch engine; this server runs ONNX")
            rows = await compute(dicom_outputs, sr, path, out_dir, deidentify, method)
            files = [Path(f) for r in rows for f in (r.get("dicom_files") or "").split(";") if f]
            if not files:
                reasons = "; ".join(r.get("warning") or r.get("error") or "" for r in rows)
                raise HTTPException(422, f"no DICOM outputs: {reasons.replace(str(path), 'upload')}")
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
                for f in files:
                    z.write(f, f.name.replace(path.stem, "scan"))
            return Response(buf.getvalue(), media_type="application/zip", headers={"Content-Disposition": 'attachment; filename="scintix-dicom.zip"'})
        finally:
            path.unlink(missing_ok=True)
            shutil.rmtree(out_dir, ignore_errors=True)

    @app.on_event("shutdown")
    def cleanup():
        shutil.rmtree(work, ignore_errors=True)

    return app
