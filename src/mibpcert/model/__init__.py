"""Framework-free models, training recipes and the ordinary numpy trainer."""

from mibpcert.model.losses import LOSSES, check_loss, encode_targets, predict_classes
from mibpcert.model.network import Architecture, forward, init_params, load_params
from mibpcert.model.recipe import TrainingRecipe
from mibpcert.model.trainer import Trajectory, batch_gradient, train

__all__ = [
    "LOSSES",
    "Architecture",
    "TrainingRecipe",
    "Trajectory",
    "batch_gradient",
    "check_loss",
    "encode_targets",
    "forward",
    "init_params",
    "load_params",
    "predict_classes",
    "train",
]
