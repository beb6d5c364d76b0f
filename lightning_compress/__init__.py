"""lightning_compress: compress transformer models while they are fine-tuned with PyTorch Lightning."""

__version__ = "0.1.0"

__all__ = ["__version__"]
