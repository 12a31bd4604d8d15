"""A pathway's inference trunk exported to ONNX and run by ONNX Runtime's CPU provider.

Optional (pip extra `onnx`): measured faster than the PyTorch trunk on 2 CPU cores (`sheetid bench runtime`).
The exported graph is `inference_trunk(pathway)` (BatchNorm folded) with a dynamic width axis, so one
session serves every tile width. It is a snapshot of the weights at export time: a pathway whose weights
change afterwards (training) must not use it.
"""

from __future__ import annotations

import io
import warnings
import weakref

import numpy as np
import torch
from torch import nn

from model.nets import Pathway

OPSET = 17  # supported by every onnxruntime release since 1.11


def export_trunk(pathway: Pathway) -> bytes:
    """ONNX model of the pathway's folded trunk: input x (1, 1, H, W), output y (1, D, H // 16, W // 16)."""
    from model.embed import inference_trunk  # here: model.embed imports this module when asked for ONNX

    trunk = inference_trunk(pathway).to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    example = torch.zeros((1, 1, 96, 256))
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of the torch.export one, which needs onnxscript
        # as a further dependency; this one needs only onnx and is supported by the pinned torch (< 2.14).
        warnings.simplefilter("ignore", DeprecationWarning)
        axes = {"x": {2: "height", 3: "width"}, "y": {2: "rows", 3: "columns"}}
        torch.onnx.export(trunk, (example,), buf,  # type: ignore[arg-type]  # a file object is documented
                          input_names=["x"], output_names=["y"], opset_version=OPSET, dynamic_axes=axes,
                          dynamo=False)  # fmt: skip
    return buf.getvalue()


class OnnxTrunk(nn.Module):
    """Drop-in for `inference_trunk(pathway)` on CPU: same input and output tensors, run by ONNX Runtime."""

    def __init__(self, pathway: Pathway, threads: int | None = None) -> None:
        import onnxruntime as ort

        super().__init__()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1  # the graph is a chain: no parallel branches to run
        self.session = ort.InferenceSession(export_trunk(pathway), options, providers=["CPUExecutionProvider"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feed = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(None, {"x": feed})[0])


_SESSIONS: weakref.WeakKeyDictionary[Pathway, dict[int, OnnxTrunk]] = weakref.WeakKeyDictionary()


def cached_onnx_trunk(pathway: Pathway) -> OnnxTrunk:
    """One session per pathway and torch thread count, exported on first use (about a second)."""
    per_pathway = _SESSIONS.setdefault(pathway, {})
    threads = torch.get_num_threads()
    if threads not in per_pathway:
        per_pathway[threads] = OnnxTrunk(pathway, threads)
    return per_pathway[threads]
