"""Mitigations of Goodhart's law, as plug-ins: one small protocol
(:mod:`~gaming_gym.mitigations.base`), one file per mitigation.

======================  ========================================================  ==============
name                    what it does                                              coefficients
======================  ========================================================  ==============
``kl_initial``          KL penalty toward the policy training started from         ``beta``
``kl_reference``        KL penalty toward a behaviour clone of the intended        ``beta``,
                        policy (``"intended"``) or the SFT model (``"sft"``)       ``reference``
``occupancy``           penalty on the state-action occupancy KL from the          ``lam``
                        intended clone, by a discriminator (Laidlaw et al.)
``early_stopping``      stop at the Goodhart onset seen on a trusted held-out      ``episodes``,
                        true check, keep the best agent (Karwowski et al.)         ``patience``,
                                                                                   ``min_drop``,
                                                                                   ``stop``
``reward_ensemble``     train on the min, mean or mean - lam * std of 5 reward     ``aggregator``,
                        models on bootstrap resamples (Coste et al.)               ``lam``
======================  ========================================================  ==============

Several compose in one run (``{"kl_reference": {...}, "early_stopping": {...}}``), applied in
the order given. A mitigation of your own is a class with the hooks it needs, registered with
:func:`register_mitigation`.
"""

from gaming_gym.mitigations import (  # noqa: F401  (registers them)
    early_stopping,
    kl_initial,
    kl_reference,
    occupancy,
    reward_ensemble,
)
from gaming_gym.mitigations.base import (
    MITIGATIONS,
    ActingPolicy,
    Context,
    Mitigation,
    Step,
    Verdict,
    build_mitigations,
    checked_mitigations,
    get_mitigation,
    register_mitigation,
    settings_of,
)

__all__ = [
    "MITIGATIONS",
    "ActingPolicy",
    "Context",
    "Mitigation",
    "Step",
    "Verdict",
    "build_mitigations",
    "checked_mitigations",
    "get_mitigation",
    "register_mitigation",
    "settings_of",
]
