"""scfront.attacks: threat models and the adaptive attack suite (PAPER.md section 7).

Every attack is an object holding hyperparameters that gets the model at call time::

    attack = scfront.attacks.create_attack("pgd-linf", restarts=10, top_u=60)
    result = attack(model, x, y, generator=torch.Generator().manual_seed(0))
    result.x_adv, result.success

``available_attacks()`` lists the names; each class's docstring documents its paper, norm,
arguments with defaults, shapes and value range.
"""

from scfront.attacks.base import Attack, AttackResult
from scfront.attacks.registry import attack_class, available_attacks, create_attack, register_attack
from scfront.attacks.threat import Norm, ThreatModel

__all__ = [
    "Attack",
    "AttackResult",
    "Norm",
    "ThreatModel",
    "attack_class",
    "available_attacks",
    "create_attack",
    "register_attack",
]
