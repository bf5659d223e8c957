"""What ``vdeblur-export parity`` compares and the bar it holds them to (see ``parity``), apart from
the comparison itself so that the command line shows them without loading torch."""

CANDIDATES = ("torch-fp16", "torch-compile", "cuda-graphs", "onnx-fp32", "onnx-fp16")
# Below the visible, and well above what an 8-bit encode keeps anyway (~50 dB is one grey level of
# error on every pixel).
THRESHOLD_DB = 45.0
