"""Shared torch helpers for the weight-only backends (RTN, AWQ, GPTQ) and their eval.

Everything here is plain Python + torch: no Django, no Celery. Modules:

- ``formats``: parse planner format strings (``rtn-int4-g64``, ``gptq-4bit-g64``).
- ``quantizer``: the integer grid (scales, zero points) and round-to-nearest.
- ``packing``: the GPTQ and AWQ-GEMM int32 packings, both directions.
- ``gptq_algo``: the Hessian-based GPTQ solver for one linear layer.
- ``layers``: walking a causal LM's decoder blocks with captured calibration inputs.
- ``checkpoint``: writing the standard GPTQ layout and loading any of our layouts
  back into a plain float model for CPU evaluation.
- ``common``: source checks, CPU limits, calibration samples, artifact placement
  and verification shared by the three backends.
- ``corpus``: the offline English text used for calibration and held-out tests.
- ``testing``: a tiny random Llama checkpoint for fast tests.
"""
