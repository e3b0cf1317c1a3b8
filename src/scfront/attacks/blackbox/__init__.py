"""Black-box attacks: score-based (Square, ZOO), decision-based (Boundary, HopSkipJump), transfer.

Fixed-budget ones (Square, transfer) derive from :class:`BlackBoxAttack`, minimum-norm ones
(Boundary, HopSkipJump, ZOO) from :class:`MinimumNormBlackBoxAttack`. The package
``scfront.attacks`` imports this one, which imports every attack module (registering it).
"""

from scfront.attacks.blackbox import boundary, hopskipjump, square, transfer, zoo  # noqa: F401  (register attacks)
from scfront.attacks.blackbox.common import DEFAULT_EPS, BlackBoxAttack, MinimumNormBlackBoxAttack
from scfront.attacks.blackbox.starts import StartPool, nearest_other_label

__all__ = ["BlackBoxAttack", "DEFAULT_EPS", "MinimumNormBlackBoxAttack", "StartPool", "nearest_other_label"]
