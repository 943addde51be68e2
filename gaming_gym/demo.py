"""``gaming-gym demo``: PPO learns BoatRace's race, then games its score, over several seeds at once.

The seeds train as one stack on the CPU (:func:`gaming_gym.experiment.train_experiments`), each
into ``OUT/seed{S}`` with its own report and plots. Then, across seeds: the table of
:mod:`gaming_gym.metrics.seeds` (printed, and written as ``OUT/summary.json``), every seed's
curve under their mean and band (``OUT/goodhart_seeds.png``, :mod:`gaming_gym.seed_plots`), and
a GIF of the seed whose final gap is the median's nearest (``OUT/boat_race_ppo.gif``): the
typical outcome, not the best one.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gaming_gym.agents import get_agent, load_run_policy
from gaming_gym.errors import ConfigError
from gaming_gym.experiment import RunSummary, checked_config, train_experiments
from gaming_gym.files import write_text_atomically
from gaming_gym.kernel import seeded_torch
from gaming_gym.metrics.seeds import SeedResult, across_seeds, seed_table
from gaming_gym.render import record_rollout
from gaming_gym.seed_plots import plot_seed_curves

DEMO_ENV = "GamingGym/BoatRace-v1"
DEMO_SEEDS = (0, 1, 2, 3)
SUMMARY_FILE = "summary.json"
FIGURE_FILE = "goodhart_seeds.png"
GIF_FILE = "boat_race_ppo.gif"


@dataclass(frozen=True)
class DemoResult:
    runs: list[RunSummary]
    results: list[SeedResult]
    training_seconds: float
    figure: Path
    summary: Path
    gif: Path
    gif_seed: int
    gif_returns: tuple[float, float]  # the rollout's proxy and true return


def run_demo(
    out: str | Path,
    seeds: Sequence[int] = DEMO_SEEDS,
    steps: int | None = None,
    threads: int = 2,
    progress: bool = True,
) -> DemoResult:
    """Train native PPO on :data:`DEMO_ENV` for ``seeds`` as one stack, then write the across-seed
    table, figure and GIF into ``out`` (module docstring). ``steps``: env steps a seed (default:
    the env's tuned budget); ``threads``: torch CPU threads of the stack."""
    seeds = _checked_seeds(seeds)
    out = Path(out)
    ppo = get_agent("ppo")
    settings = {"device": "cpu", "cpu_threads": threads}
    if steps is not None:
        settings["total_timesteps"] = steps
    configs = [checked_config(lambda s=seed: ppo.config(DEMO_ENV, seed=s, **settings)) for seed in seeds]
    started = time.perf_counter()
    runs = train_experiments("ppo", configs, [out / f"seed{seed}" for seed in seeds], progress=progress)
    training_seconds = time.perf_counter() - started
    results = [SeedResult.of(seed, run.report) for seed, run in zip(seeds, runs, strict=True)]
    figure = plot_seed_curves([run.report for run in runs], seeds, out / FIGURE_FILE)
    typical = median_gap_seed(results)
    policy, _ = load_run_policy(runs[seeds.index(typical)].run_dir)
    with seeded_torch(typical):
        proxy, true, gif = record_rollout(DEMO_ENV, policy, out / GIF_FILE, seed=typical)
    summary = write_summary(out / SUMMARY_FILE, results, training_seconds, typical)
    return DemoResult(runs, results, training_seconds, figure, summary, gif, typical, (proxy, true))


def median_gap_seed(results: Sequence[SeedResult]) -> int:
    """The seed whose final gap lies nearest the median over seeds (the lower seed on a tie: with
    an even number of seeds the two middle ones are equally near)."""
    median = float(np.median([result.final_gap for result in results]))
    return min(results, key=lambda result: (abs(result.final_gap - median), result.seed)).seed


def write_summary(path: Path, results: Sequence[SeedResult], training_seconds: float, gif_seed: int) -> Path:
    """``summary.json``: the env, each seed's numbers, the across-seed means and intervals."""
    over = across_seeds(results)
    data = {
        "env_id": DEMO_ENV,
        "seeds": [result.to_dict() for result in results],
        "across_seeds": {name: dataclasses.asdict(value) for name, value in over.items()},
        "rose_and_fell": sum(result.rises_and_falls for result in results),
        "training_seconds": training_seconds,
        "gif_seed": gif_seed,
    }
    return write_text_atomically(path, json.dumps(data, indent=2, allow_nan=False))


def describe(demo: DemoResult) -> str:
    """What the demo prints after training: the table, the time, and where its files are."""
    proxy, true = demo.gif_returns
    seeds = len(demo.results)
    return "\n".join(
        [
            seed_table(demo.results),
            (f"{seeds} seeds trained as one stack" if seeds > 1 else "1 seed trained")
            + f" in {demo.training_seconds / 60:.1f} min",
            f"curves over seeds: {demo.figure}",
            f"each seed's report and curves: {', '.join(str(run.run_dir) for run in demo.runs)}",
            f"table: {demo.summary}",
            f"rollout of seed {demo.gif_seed}, the final gap nearest the median (proxy {proxy:.0f}, "
            f"true {true:.2f}): {demo.gif}",
        ]
    )


def _checked_seeds(seeds: Sequence[int]) -> list[int]:
    seeds = list(seeds)
    if not seeds:
        raise ConfigError("the demo needs at least one seed")
    if not all(isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0 for seed in seeds):
        raise ConfigError(f"seeds must be ints >= 0, got {seeds}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds must differ (each is one run), got {seeds}")
    return seeds
