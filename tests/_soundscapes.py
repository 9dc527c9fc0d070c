"""The pasted-word soundscape helpers live with the benchmark that needs them most
(``benchmarks/_pasted.py``); the detection tests use the same ones."""

import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "_pasted", Path(__file__).resolve().parents[1] / "benchmarks" / "_pasted.py"
)
_pasted = importlib.util.module_from_spec(_spec)
sys.modules["_pasted"] = _pasted  # dataclasses look their module up there
_spec.loader.exec_module(_pasted)

Placement = _pasted.Placement
N_TRAIN = _pasted.N_TRAIN
clips = _pasted.clips
load_clip = _pasted.load_clip
noise = _pasted.noise
trained_model = _pasted.trained_model
write_soundscape = _pasted.write_soundscape
