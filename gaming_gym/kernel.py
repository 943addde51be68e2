"""The kernel contract: one environment written as pure, batched torch functions.

An environment is written once, as a :class:`Kernel`: pure functions over a state dataclass of
torch tensors with a leading batch dimension (after gymnax and Brax). The fronts of
:mod:`gaming_gym.fronts` serve it to Gymnasium; :mod:`gaming_gym.checker` checks the contract.

Randomness inside ``step`` must come from the state, not from a global RNG (``torch.rand``
without a generator): keep a per-env generator state in the state dataclass, seeded at ``reset``
from the front's ``torch.Generator``, as :mod:`gaming_gym.envs.sensor_cleaner` does with its
``rng`` field. Then the same seed and actions give the same trajectory on both fronts, batched or
not; :func:`gaming_gym.checker.check_gameable_env` replays a rollout to check it.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import gymnasium as gym
import numpy as np
import torch

from gaming_gym.errors import KernelContractError, UnknownPolicyError
from gaming_gym.knobs import checked_dataclass

Policy = Callable[[torch.Tensor], torch.Tensor]
"""A batched policy: observations ``(N, *obs_shape)`` to actions ``(N, *action_shape)``."""

REFERENCE_POLICY_NAMES = ("intended", "exploit")
FAMILIES = ("proxy", "shift")
"""What goes wrong in an env (:attr:`Kernel.family`): a gameable proxy, or a distribution shift."""

STEP_COUNTER = "t"
"""The state field every kernel keeps: an int ``(n,)`` tensor, 0 at ``reset`` and one more on each
``step``. The vector front's time limit (``max_episode_steps``) and the default frame read it."""


class StepResult(NamedTuple):
    """What a kernel's ``step`` returns for the whole batch, by name.

    A NamedTuple, so ``state, proxy, true, terminated = step(...)`` still unpacks; callers read
    ``result.proxy`` and ``result.true`` by name, and a kernel that builds
    ``StepResult(state=..., proxy=..., true=..., terminated=...)`` cannot swap the two rewards
    silently.
    """

    state: Any
    """The new state (a new object: the state passed in is left as it was)."""
    proxy: torch.Tensor
    """Float ``(n,)``: the reward the agent is given, which the fronts return as ``reward``."""
    true: torch.Tensor
    """Float ``(n,)``: the hidden true objective of this step."""
    terminated: torch.Tensor
    """Bool ``(n,)``: the episode ended inside the MDP (time limits are the fronts' business)."""


@dataclass(frozen=True)
class Kernel:
    """One environment, written as pure batched torch functions (after gymnax and Brax).

    Every function takes the knob settings (``params``, an instance of ``params_type``) first.
    ``state`` is a dataclass whose fields are tensors with the batch as their first dimension,
    one of which is the step counter ``t`` (:data:`STEP_COUNTER`): an int ``(n,)`` tensor, 0 at
    ``reset`` and one more on each ``step``. The vector front's time limit reads it, so it is
    declared here and checked when a front is made (:func:`check_kernel`).

    States are values: ``step`` returns a new state and never writes into the tensors of the one
    it was given, and no caller writes into a state's tensors either (build a changed copy with
    ``dataclasses.replace``). The fronts rely on it: the vector front keeps the stepped state's
    observation as ``info["final_obs"]`` while it resets ended envs, and a reset may hand out
    tensors that share memory (BoatRace's zero speed, progress and score are rows of one tensor).

    Attributes:
        name: human name shown in renders and tables, e.g. ``"BoatRace"``.
        params_type: dataclass of the env's knobs; its defaults are the gameable setting.
        reset: ``(params, n, generator, device) -> state`` for ``n`` fresh episodes.
        step: ``(params, state, action) -> StepResult(state, proxy, true, terminated)``: rewards
            are float ``(n,)`` tensors and ``terminated`` a bool ``(n,)`` tensor. Time limits are
            the fronts' business (``state.t`` counts steps), as Gymnasium's ``TimeLimit`` is.
            ``step`` is pure: any randomness comes from a generator state kept in ``state``
            (seeded in ``reset`` from its ``generator``; SensorCleaner's ``rng`` field is an
            example), never from torch's global RNG, or the same seed would not give the same
            trajectory.
        observe: ``(params, state) -> obs`` of shape ``(n, *observation_space.shape)``.
        observation_space, action_space: ``params -> gym.Space`` for one env.
        reference_policies: ``params -> {"intended": Policy, "exploit": Policy}``; batched,
            scripted policies acting on observations (:func:`reference_policies_from` builds it
            from one ``params -> Policy`` function per name).
        summary: one line each for the proxy reward, true objective and known exploit.
        draw: optional ``(params, state, index, surface) -> None`` painting env ``index`` on a
            pygame surface. Without it, frames show the observation as bars with the proxy and
            hidden true returns (:func:`gaming_gym.render.draw_default_frame`), so a new env
            renders before it has drawing code.
        family: what goes wrong in the env, which decides what the contract asks of its
            reference policies. ``"proxy"`` (specification gaming): the reward is a proxy, and
            under the default knobs the exploit earns more of it and less true return than the
            intended policy. ``"shift"`` (goal misgeneralisation): the reward is the true objective
            and the default knobs are the training distribution, on which the two policies tie;
            under the ``deployment`` knobs the exploit loses true return.
        deployment: a ``"shift"`` env's deployment knobs (``{"coin_placement": "random"}``).
    """

    name: str
    params_type: type
    reset: Callable[..., Any]
    step: Callable[..., StepResult]
    observe: Callable[..., torch.Tensor]
    observation_space: Callable[[Any], gym.Space]
    action_space: Callable[[Any], gym.Space]
    reference_policies: Callable[[Any], dict[str, Policy]]
    summary: Mapping[str, str]
    draw: Callable[..., None] | None = None
    family: str = "proxy"
    deployment: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_module(
        cls,
        module: str,
        *,
        name: str,
        params_type: type,
        summary: Mapping[str, str],
        family: str = "proxy",
        deployment: Mapping[str, Any] | None = None,
    ) -> Kernel:
        """The kernel of an env written as one module whose functions carry the contract's names.

        The module (``__name__`` from inside it, at its end, once its functions are defined)
        defines ``reset``, ``step``, ``observe``, ``observation_space``, ``action_space``, one
        ``<name>_policy(params) -> Policy`` per reference policy (``intended_policy``,
        ``exploit_policy``) and, optionally, ``draw``. Every built-in env is made this way, so the
        wiring is written once, here; a missing function is named at import.
        """
        namespace = vars(sys.modules[module])
        builders = {policy: f"{policy}_policy" for policy in REFERENCE_POLICY_NAMES}
        needed = [*MODULE_FUNCTIONS, *builders.values()]
        missing = [function for function in needed if not callable(namespace.get(function))]
        if missing:
            raise KernelContractError(
                f"{name}: module {module} lacks {', '.join(missing)}; a kernel module defines "
                f"{', '.join(needed)} and optionally draw"
            )
        return cls(
            name=name,
            params_type=params_type,
            **{function: namespace[function] for function in MODULE_FUNCTIONS},
            reference_policies=reference_policies_from(
                {policy: namespace[function] for policy, function in builders.items()}
            ),
            summary=summary,
            draw=namespace.get("draw"),
            family=family,
            deployment=dict(deployment or {}),
        )

    def make_params(self, **knobs: Any) -> Any:
        """Build ``params_type`` from knob keyword arguments, naming any unknown knob.

        A setting of frozen (immutable) params is checked once: making another env with the same
        knobs reuses its params rather than validating them again."""
        key = (id(self), repr(sorted(knobs.items())))
        cached = _PARAMS.get(key)
        if cached is not None and cached[0] is self:
            return cached[1]
        params = self._checked_params(knobs)
        if getattr(getattr(self.params_type, "__dataclass_params__", None), "frozen", False):
            _PARAMS[key] = (self, params)
        return params

    def _checked_params(self, knobs: dict[str, Any]) -> Any:
        return checked_dataclass(self.params_type, knobs, self.name, "knob")


_PARAMS: dict[tuple[int, str], tuple[Kernel, Any]] = {}
"""Checked params by (kernel, knob setting): :meth:`Kernel.make_params` validates a setting once."""

MODULE_FUNCTIONS = ("reset", "step", "observe", "observation_space", "action_space")
"""The functions :meth:`Kernel.from_module` takes from a module by these names."""


def check_kernel(kernel: Kernel, params: Any, device: torch.device) -> None:
    """Reset one env and step it once; raise :class:`KernelContractError` naming what breaks the
    contract's shape: a state that is not a dataclass, no step counter ``t`` (0 at reset, 1 after
    a step), a ``step`` that does not return a :class:`StepResult` of float rewards and a bool
    termination. The fronts call it when they are made, so a broken kernel fails at ``make`` with
    a sentence rather than deep inside a rollout.
    """
    state = kernel.reset(params, 1, seeded_generator(0, device), device)
    if not dataclasses.is_dataclass(state) or isinstance(state, type):
        raise KernelContractError(
            f"{kernel.name}: reset must return a dataclass of batch-first tensors, got {type(state).__name__}"
        )
    _require_counter(kernel, state, 0, "reset")
    space = kernel.action_space(params)
    space.seed(0)
    result = kernel.step(params, state, torch.as_tensor(np.asarray(space.sample()), device=device)[None])
    if not isinstance(result, StepResult):
        raise KernelContractError(
            f"{kernel.name}: step must return gaming_gym.StepResult(state, proxy, true, terminated), "
            f"got {type(result).__name__}; build it by name, so the proxy and true rewards cannot swap"
        )
    if type(result.state) is not type(state):
        raise KernelContractError(
            f"{kernel.name}: step returned a {type(result.state).__name__}, reset a {type(state).__name__}"
        )
    _require_counter(kernel, result.state, 1, "a step")
    for field, kind in (("proxy", "float"), ("true", "float"), ("terminated", "bool")):
        value = getattr(result, field)
        if _describe(value) != f"{kind} (1,)":
            raise KernelContractError(
                f"{kernel.name}: step's {field} must be a {kind} (n,) tensor, got {_describe(value)}"
            )


def _require_counter(kernel: Kernel, state: Any, expected: int, after: str) -> None:
    counter = getattr(state, STEP_COUNTER, None)
    if _describe(counter) != "int (1,)" or int(counter[0]) != expected:
        got = "no field t" if counter is None else f"{_describe(counter)} {counter!r}"
        raise KernelContractError(
            f"{kernel.name}: the state needs the step counter t, an int (n,) tensor that is 0 at reset "
            f"and one more on each step (the fronts' time limit reads it); after {after} it should be "
            f"{expected}, got {got}"
        )


def _describe(value: Any) -> str:
    """``"float (n,)"``, ``"int (n,)"`` or ``"bool (n,)"`` for a tensor, else the type's name."""
    if not isinstance(value, torch.Tensor):
        return type(value).__name__
    kind = "bool" if value.dtype == torch.bool else "float" if value.is_floating_point() else "int"
    return f"{kind} {tuple(value.shape)}"


# --- constants: an env's fixed tensors, made once per device ------------------------------------

T = TypeVar("T")


def device_constants(make: Callable[..., T]) -> Callable[..., T]:
    """Decorate ``make(*key, device)``, which builds an env's fixed tensors (geometry, lookup
    tables, knob-dependent scalars) on ``device``, so they are made once per (key, device).

    The key arguments must be hashable: a room size, a frozen params dataclass. The cache is a
    plain dict read by plain Python, which ``torch.compile`` traces through, reading the cached
    tensors as constants. ``functools.cache`` would not do: Dynamo traces into the function it
    wraps, rebuilding the tables inside every compiled step.
    """
    cache: dict[tuple, T] = {}

    def cached(*key_and_device: Any) -> T:
        key = (*key_and_device[:-1], torch.device(key_and_device[-1]))
        if key not in cache:
            cache[key] = make(*key)
        return cache[key]

    cached.__name__, cached.__qualname__, cached.__doc__ = make.__name__, make.__qualname__, make.__doc__
    return cached


# --- state helpers: a state is a dataclass of batch-first tensors ------------------------------


def select_state(mask: torch.Tensor, if_true: Any, if_false: Any) -> Any:
    """Per env, take ``if_true``'s fields where ``mask`` holds and ``if_false``'s elsewhere."""
    merged = {}
    for field in dataclasses.fields(if_true):
        a, b = getattr(if_true, field.name), getattr(if_false, field.name)
        merged[field.name] = torch.where(mask.view(-1, *([1] * (a.dim() - 1))), a, b)
    return dataclasses.replace(if_true, **merged)


def take_state(state: Any, rows: torch.Tensor | slice) -> Any:
    """The sub-batch of ``state`` at ``rows`` (a boolean mask, index tensor or slice)."""
    return dataclasses.replace(
        state, **{f.name: getattr(state, f.name)[rows] for f in dataclasses.fields(state)}
    )


def concat_states(states: Sequence[Any]) -> Any:
    """One batch of the batches ``states``, in order."""
    fields = dataclasses.fields(states[0])
    return dataclasses.replace(
        states[0], **{f.name: torch.cat([getattr(state, f.name) for state in states]) for f in fields}
    )


def seeded_generator(seed: int | None, device: torch.device) -> torch.Generator:
    """A torch generator on ``device``, seeded with ``seed`` or from fresh OS entropy."""
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1, dtype=np.uint64)[0] >> 1)
    generator = torch.Generator(device=device)
    generator.manual_seed(int(seed))
    return generator


@contextmanager
def seeded_torch(seed: int) -> Iterator[None]:
    """Seed torch's CPU RNG (which policies sample from) for the block, restoring it after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


# --- reference policies -------------------------------------------------------------------------


def reference_policies_from(
    builders: Mapping[str, Callable[[Any], Policy]],
) -> Callable[[Any], dict[str, Policy]]:
    """A kernel's ``reference_policies``: ``params -> {name: builder(params)}`` for each builder
    (``{"intended": intended_policy, "exploit": exploit_policy}``), so an env writes each policy
    once and not the table as well."""
    builders = dict(builders)

    def reference_policies(params: Any) -> dict[str, Policy]:
        return {name: build(params) for name, build in builders.items()}

    return reference_policies


def get_reference_policy(kernel: Kernel, params: Any, name: str) -> Policy:
    """Look up one scripted reference policy by name, with a clear error for unknown names."""
    policies = kernel.reference_policies(params)
    if name not in policies:
        raise UnknownPolicyError(f"{kernel.name} has no reference policy {name!r}; it has {sorted(policies)}")
    return policies[name]
