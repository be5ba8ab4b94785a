"""Learned sparse encoders: text -> :class:`lsr.vectors.SparseBatch` over a vocabulary."""

from lsr.encoders.base import BUNDLED_MODELS, Encoder, load_encoder, resolve_model_path

__all__ = ["BUNDLED_MODELS", "Encoder", "load_encoder", "resolve_model_path"]
