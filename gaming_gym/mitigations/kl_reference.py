"""KL penalty toward a behaviour clone of the env's intended policy (RLHF's recipe: SFT, then PPO
with a KL penalty toward the SFT model).

The penalty is :mod:`~gaming_gym.mitigations.kl_initial`'s, ``beta * log(pi(a|s) / pi_ref(a|s))``
off each step's reward, with the reference a behaviour clone that the trainer builds once at the
start of a fresh run (a few seconds; kept with the run's checkpoints):

* ``reference = "intended"``: a clone of the scripted intended policy's own choices on states it
  visits with random actions mixed in: a clean copy of the intended behaviour;
* ``reference = "sft"``: a clone of the noisy demonstrator's actions as taken (half of them
  random), middling and stochastic: RLHF's SFT model, the one a run with ``start = "sft"``
  starts from.

Each clone mixes in 10% of the uniform distribution (a Gaussian's std is floored at 0.25), so the
KL toward it stays finite. Log columns: ``mitigation/kl_reference/kl`` and ``.../penalty``.
"""

from __future__ import annotations

from dataclasses import dataclass

from gaming_gym.knobs import require_choice, require_number
from gaming_gym.mitigations.base import ActingPolicy, register_mitigation
from gaming_gym.mitigations.kl_initial import KLToInitial

REFERENCES = ("intended", "sft")


@dataclass(frozen=True)
class KLReferenceSettings:
    beta: float = 0.1
    """weight of the penalty, the KL coefficient (0 turns it off)"""
    reference: str = "intended"
    """the clone penalised toward: "intended" or "sft" (module docstring)"""

    def __post_init__(self) -> None:
        require_number("beta", self.beta, 0.0, 1e6)
        require_choice("reference", self.reference, REFERENCES)


@register_mitigation
class KLToReference(KLToInitial):
    """A KL penalty toward a behaviour-cloned reference policy (module docstring)."""

    name = "kl_reference"
    Settings = KLReferenceSettings

    def prepare(self) -> None:
        self.reference()  # the clone is built now, before training, not at the first step

    def reference(self) -> ActingPolicy:
        return self.context.clone(self.settings[0].reference)
