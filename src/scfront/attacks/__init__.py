"""scfront.attacks: threat models and the adaptive attack suite (docs/method.md §7).

Every attack is an object holding hyperparameters that gets the model (and any data, such as a
pool of starting images) at call time::

    attack = scfront.attacks.create_attack("pgd-linf", restarts=10, bpda=BPDA(top_u=60))
    result = attack(model, x, y, generator=torch.Generator().manual_seed(0))
    result.x_adv, result.success

Two kinds, told apart with ``isinstance``: a :class:`FixedBudgetAttack` searches inside its
ε-ball and returns an :class:`AttackResult`; a :class:`MinimumNormAttack` (Boundary,
HopSkipJump, ZOO) returns a :class:`MinimumNormResult` (the closest adversarial found, its norm,
and the ε-constrained verdict). What else an attack is, its class declares: ``black_box``,
``randomized``, ``uses_starts``, ``threat`` (norm and ε), ``eot_samples``, ``bpda``.

``available_attacks()`` lists the names; each class's docstring documents its paper, norm,
arguments with defaults, shapes and value range. Importing this package imports every attack
module, so the registry is complete whichever module a caller imports first.
"""

from scfront.attacks import apgd, blackbox, fab, fgsm, pgd, sparse_l1  # noqa: F401  (register attacks)
from scfront.attacks.base import Attack, AttackResult, FixedBudgetAttack, MinimumNormAttack, MinimumNormResult
from scfront.attacks.registry import attack_class, available_attacks, create_attack, register_attack
from scfront.attacks.threat import Norm, ThreatModel

__all__ = [
    "Attack",
    "AttackResult",
    "FixedBudgetAttack",
    "MinimumNormAttack",
    "MinimumNormResult",
    "Norm",
    "ThreatModel",
    "attack_class",
    "available_attacks",
    "create_attack",
    "register_attack",
]
