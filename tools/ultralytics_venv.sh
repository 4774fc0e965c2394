#!/usr/bin/env bash
# A THROWAWAY venv with Ultralytics, for comparing edge with `YOLO(...).predict` (issue 12).
# Ultralytics is never a dependency of edge: it lives only in this venv, outside the repo.
#
#   bash tools/ultralytics_venv.sh [VENV]        (default VENV: /work/yolo/venv)
#
# It makes, each only when missing (run it again and it skips what exists):
#   VENV                                 torch 2.14.1 + torchvision 0.29.1, ultralytics, onnx,
#                                        onnxslim (when it installs) and openvino at the version
#                                        edge's .venv has, so both sides use the same runtime
#   $YOLO_DIR/models/yolov8n-640.onnx    YOLOv8n with RANDOM weights (from yolov8n.yaml, torch seed
#   $YOLO_DIR/models/yolov8n-320.onnx    0: the same weights every time), static batch 1, the
#   $YOLO_DIR/models/yolov8n-{640,320}_openvino_model/   opset Ultralytics picks; IR with metadata.yaml
#   $YOLO_DIR/clip720.mp4                the first 300 frames of demo/demo.mp4 (1280x720, 25 fps),
#                                        re-encoded with libx264
# YOLO_DIR defaults to the venv's parent folder. Nothing is downloaded but packages from PyPI: no
# weights, no fonts (YOLO_OFFLINE=1; the export runs with a timeout so a hang shows as a failure).
#
# On x86_64 with Python 3.11, pip takes torch 2.14.1 and torchvision 0.29.1 from this machine's
# disk; PyPI's torchvision fails beside torch 2.13.0, so exactly these two are pinned.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
VENV=${1:-/work/yolo/venv}
YOLO_DIR=${YOLO_DIR:-$(dirname "$VENV")}
MODELS=$YOLO_DIR/models
CLIP=$YOLO_DIR/clip720.mp4
EDGE_PY=${EDGE_PY:-$REPO/.venv/bin/python}
PYTHON=${PYTHON:-python3}
SIZES=(640 320)

made=()

# --- the venv -----------------------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  echo "== venv $VENV"
  mkdir -p "$(dirname "$VENV")"
  "$PYTHON" -m venv "$VENV"
  made+=("$VENV")
fi
PY=$VENV/bin/python
"$PY" -m pip install -q --upgrade pip >/dev/null

if ! "$PY" -c "import torch, torchvision; assert torch.__version__.startswith('2.14.1')" 2>/dev/null; then
  echo "== pip install torch==2.14.1 torchvision==0.29.1"
  "$PY" -m pip install -q torch==2.14.1 torchvision==0.29.1
fi

OV_VERSION=$("$EDGE_PY" -c "import openvino; print(openvino.__version__.split('-')[0])")
if ! "$PY" -c "import ultralytics, onnx, openvino, sys; sys.exit(openvino.__version__.split('-')[0] != '$OV_VERSION')" 2>/dev/null; then
  echo "== pip install ultralytics onnx openvino==$OV_VERSION"
  # torch pinned again so no other package can move it off the build on disk.
  "$PY" -m pip install -q torch==2.14.1 torchvision==0.29.1 ultralytics onnx "openvino==$OV_VERSION"
fi
if ! "$PY" -c "import onnxslim" 2>/dev/null; then
  echo "== pip install onnxslim"
  "$PY" -m pip install -q torch==2.14.1 onnxslim || echo "!! onnxslim did not install: exports go without it"
fi
# Ultralytics simplifies ONNX exports with onnxslim + onnxruntime and predicts ONNX files with
# onnxruntime: the same version as edge's, so both sides run the same runtime. Installed here,
# else Ultralytics' AutoUpdate would try pip itself during export.
ORT_VERSION=$("$EDGE_PY" -c "import onnxruntime; print(onnxruntime.__version__)")
if ! "$PY" -c "import onnxruntime, sys; sys.exit(onnxruntime.__version__ != '$ORT_VERSION')" 2>/dev/null; then
  echo "== pip install onnxruntime==$ORT_VERSION"
  "$PY" -m pip install -q torch==2.14.1 "onnxruntime==$ORT_VERSION"
fi

# --- the models ---------------------------------------------------------------------------------
# Ultralytics touches the network only when it thinks it is online: YOLO_OFFLINE=1 says it is not
# (no weights, no Arial.ttf, no pip AutoUpdate). The timeout makes a hang a failure, not a wait.
export YOLO_OFFLINE=1 YOLO_AUTOINSTALL=false
mkdir -p "$MODELS"
for size in "${SIZES[@]}"; do
  onnx_out=$MODELS/yolov8n-$size.onnx
  ov_out=$MODELS/yolov8n-${size}_openvino_model
  [ -s "$onnx_out" ] && [ -s "$ov_out/metadata.yaml" ] && continue
  echo "== export YOLOv8n (random weights, seed 0) at imgsz $size"
  work=$(mktemp -d)
  (
    cd "$work"
    timeout 600 "$PY" - "$size" <<'PYEOF'
import sys

import torch
from ultralytics import YOLO
from ultralytics.utils import ROOT, YAML

size = int(sys.argv[1])
torch.manual_seed(0)  # the same random weights every time
model = YOLO("yolov8n.yaml", task="detect")  # built from the bundled yaml: nothing downloaded
# COCO's 80 names (bundled with Ultralytics) instead of "0".."79", so configs can say `person`.
model.model.names = dict(YAML.load(ROOT / "cfg/datasets/coco.yaml")["names"])
model.export(format="onnx", imgsz=size, batch=1, dynamic=False, device="cpu")
model.export(format="openvino", imgsz=size, batch=1, dynamic=False, device="cpu")
PYEOF
  )
  # Ultralytics names both after the yaml: yolov8n.onnx and yolov8n_openvino_model/ in the cwd.
  if [ ! -s "$onnx_out" ]; then
    mv "$work/yolov8n.onnx" "$onnx_out"
    made+=("$onnx_out")
  fi
  if [ ! -s "$ov_out/metadata.yaml" ]; then
    rm -rf "$ov_out"
    mv "$work/yolov8n_openvino_model" "$ov_out"
    made+=("$ov_out")
  fi
  rm -rf "$work"
done

# --- the clip -----------------------------------------------------------------------------------
if [ ! -s "$CLIP" ]; then
  echo "== clip $CLIP (first 300 frames of demo/demo.mp4, libx264)"
  DEMO=$REPO/demo/demo.mp4
  if [ ! -s "$DEMO" ]; then
    "$EDGE_PY" "$REPO/tools/make_demo_video.py" "$DEMO"
  fi
  ffmpeg -nostdin -loglevel error -y -i "$DEMO" -frames:v 300 -an -c:v libx264 -pix_fmt yuv420p \
    -r 25 -preset medium -crf 23 "$CLIP.tmp.mp4"
  mv "$CLIP.tmp.mp4" "$CLIP"
  made+=("$CLIP")
fi

# --- what there is ------------------------------------------------------------------------------
"$PY" -c "import torch, ultralytics, onnxruntime, openvino; print(f'torch {torch.__version__}, ultralytics {ultralytics.__version__}, onnxruntime {onnxruntime.__version__}, openvino {openvino.__version__}')"
if [ ${#made[@]} -gt 0 ]; then
  echo "made:"
  du -sh "${made[@]}"
else
  echo "nothing to make: all there"
fi
du -sh "$MODELS"/yolov8n-* "$CLIP"
