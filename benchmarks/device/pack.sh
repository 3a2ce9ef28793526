#!/usr/bin/env bash
# Here, before a session's first device call: what the lent GPU machine lacks goes into .devkit/ (git-ignored; it travels
# only when a `run` call names it in `carry`). The machine has Python 3.12 with torch, numpy, scikit-learn, scipy, pillow,
# matplotlib, pyyaml and tqdm, but neither MONAI nor pydicom, no network, and no ../shared/data beside the checkout.
# 64 MiB travel per call in all: the repository (~4 MB), these wheels (~5 MB) and BS-80K's chest crops (37 MB) fit;
# QaTa (86 MB) does not.
set -euo pipefail
cd "$(dirname "$0")/../.."
KIT=.devkit
SHARED=${SCINTIX_SHARED_DATA:-../shared/data}
PY=${PYTHON:-.venv/bin/python}
rm -rf "$KIT" && mkdir -p "$KIT/whl" "$KIT/data"
versions=$("$PY" -c "import monai, pydicom; print(f'monai=={monai.__version__} pydicom=={pydicom.__version__}')")
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
    --platform manylinux2014_x86_64 --platform any -d "$KIT/whl" $versions
if [ -d "$SHARED/bs80k-chest-region" ]; then
    cp -r "$SHARED/bs80k-chest-region" "$KIT/data/"
else
    echo "note: $SHARED/bs80k-chest-region not found: real-data jobs will skip there" >&2
fi
du -sh "$KIT" "$KIT"/*
