"""Deployment: ``layerkd export`` (ONNX, verified against PyTorch, optional int8) and scoring an
exported model with onnxruntime (``layerkd evaluate EXPORT_DIR``). See ``docs/export.md``.

* :mod:`.runtime` — the onnx/onnxruntime imports (the ``onnx`` extra) and the exported-model
  directory: its metadata file, detection, loading and prediction;
* :mod:`.onnx_graph` — tracing a layerkd model (transformer, BiLSTM, CNN) into an ONNX graph;
* :mod:`.quantize` — dynamic int8 quantisation;
* :mod:`.export_run` — the command: export, verify on the task's rows, quantise, report.
"""

#: largest |logit difference| allowed between the fp32 ONNX graph and PyTorch. Both compute in
#: fp32; they differ only by the order of floating-point operations (fused kernels, another
#: summation order): measured here at 1e-8 to 3e-7 (tiny test students; a 2-layer MiniLM cut,
#: cls and mean pooling, on RTE dev at 128 tokens). 1e-4 leaves more than two orders of
#: magnitude of room for deeper models and other CPUs, and still catches a real error (a wrong
#: mask, a lost pooling hook, dropout left on, a shape frozen into the graph), which moves
#: logits by 1e-3 or far more.
DEFAULT_TOLERANCE = 1e-4
