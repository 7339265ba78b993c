"""ONNX models: a small ONNX→torch converter, onnxruntime for the rest, and the `onnx` model provider."""
