"""fp16 copy of rfdetr's ONNX export, for WebGPU adapters with ``shader-f16`` (half the download, half the memory).

Why onnxruntime's converter (``onnxruntime.transformers.float16``) and not onnxconverter-common's: the latter (1.15,
1.16) leaves rfdetr's ``Cast(to=float)`` after the input in fp32 and then drops it with the inserted cast, so the
patch-embedding Conv gets an fp32 input and fp16 weights and the graph does not load (onnxconverter-common issue
#320, fix pending in PR #326). onnxruntime's copy retypes such casts. Inputs and outputs stay fp32
(``keep_io_types``), so the page's pre- and post-processing are the same for both files; the converter's default op
block list keeps TopK (the query selection), Range, CumSum, Min/Max … in fp32. The converted graph is loaded once in
onnxruntime before it is offered: a graph that does not load is reported as a failed fp16 export.
"""

from __future__ import annotations

from pathlib import Path


def converter_versions() -> dict[str, str]:
    """What the fp16 file depends on, for the cache key."""
    import onnxruntime

    return {"precision": "fp16", "onnxruntime": onnxruntime.__version__}


def convert_to_fp16(src: Path, dst: Path) -> Path:
    """Write ``dst``, the fp16 graph of the fp32 ONNX file ``src`` (fp32 inputs and outputs), and check it loads."""
    import onnx
    import onnxruntime
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))
    del model
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # the CPU lacks fp16 kernels for some ops and says so per node: expected
    onnxruntime.InferenceSession(str(dst), options, providers=["CPUExecutionProvider"])
    return dst
