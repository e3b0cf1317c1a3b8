"""A user's own classifier put behind the sparse coding frontend (README, "Evaluate your own defense").

scfront needs nothing but a callable that returns the ``nn.Module``: no registration, no base
class. ``make_classifier`` is what ``scfront train --classifier my_defense:make_classifier``
trains behind the frontend (scfront calls it with ``num_classes=`` because it accepts that
argument); ``make_defended`` builds the same network behind the frontend in Python, for
``scfront.load("my_defense:make_defended", weights=...)`` or ``scfront evaluate
my_defense:make_defended --weights FILE``. With this folder on the path
(``PYTHONPATH=examples``) both names import.
"""

from __future__ import annotations

from torch import nn

import scfront


def make_classifier(num_classes: int = 10) -> nn.Module:
    """A small CNN: (N, 3, 32, 32) images in [0, 1] -> (N, num_classes) logits."""
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1, stride=2), nn.BatchNorm2d(64), nn.ReLU(),
        nn.Conv2d(64, 128, 3, padding=1, stride=2), nn.BatchNorm2d(128), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, num_classes),
    )


def make_defended(num_classes: int = 10) -> nn.Module:
    """``make_classifier`` behind the frontend: the paper's encoder (CIFAR-10 dictionary, T = 15)
    and the small decoder; (N, 3, 32, 32) images in [0, 1] -> logits."""
    return scfront.defend(make_classifier(num_classes), dictionary="cifar10", decoder="small", top_t=15)
