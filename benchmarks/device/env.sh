# On the lent GPU machine, in the repository root, with `.devkit` carried (benchmarks/device/pack.sh made it here):
#     source benchmarks/device/env.sh && python3 benchmarks/device/smoke.py --out $OUT
# Installs the kit's wheels (MONAI, pydicom: the machine lacks them and reaches no index) into /tmp/site, puts src/ on the
# path (no pip install of scintix there), points the real-data benchmarks at .devkit/data, records the GPU in $OUT.
PY=${PY:-python3}
if ! ls .devkit/whl/*.whl >/dev/null 2>&1; then
    echo "env.sh: no .devkit/whl/*.whl: run benchmarks/device/pack.sh here and name .devkit in the call's carry" >&2
    return 3 2>/dev/null || exit 3
fi
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .devkit/whl/*.whl || { return 3 2>/dev/null || exit 3; }
export PYTHONPATH=/tmp/site:$PWD/src${PYTHONPATH:+:$PYTHONPATH}
export SCINTIX_SHARED_DATA=$PWD/.devkit/data PYTHONUNBUFFERED=1 SCINTIX_NO_REEXEC=1 OUT=${OUT:-/tmp/device-out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv > "$OUT/nvidia_smi.csv" 2>&1 || echo "no nvidia-smi" > "$OUT/nvidia_smi.csv"
