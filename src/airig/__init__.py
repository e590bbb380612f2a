"""airig: provision and verify Personal AI Computers (NVIDIA GPU boxes with open-weight models)."""

__version__ = "0.1.0"
