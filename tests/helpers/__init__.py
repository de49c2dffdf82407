"""Reusable test helpers shared by every component's tests (real ONNX, real keys)."""
