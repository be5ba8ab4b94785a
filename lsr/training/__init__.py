"""Training learned sparse encoders: ``lsr train`` (see :mod:`lsr.training.trainer`)."""

from lsr.training.trainer import TrainConfig, Trainer, train

__all__ = ["TrainConfig", "Trainer", "train"]
