"""Black-box attacks: score-based (Square, ZOO), decision-based (Boundary, HopSkipJump), transfer.

Importing this package registers every attack in :mod:`scfront.attacks.registry`.
"""

from scfront.attacks.blackbox import boundary, hopskipjump, square, transfer, zoo  # noqa: F401  (register attacks)
from scfront.attacks.blackbox.common import DEFAULT_EPS, BlackBoxAttack
from scfront.attacks.blackbox.starts import StartPool, nearest_other_label

__all__ = ["BlackBoxAttack", "DEFAULT_EPS", "StartPool", "nearest_other_label"]
