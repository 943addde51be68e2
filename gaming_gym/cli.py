"""The ``gaming-gym`` command (also ``python -m gaming_gym``).

    gaming-gym list
    gaming-gym train GamingGym/BoatRace-v1 --steps 300000 --seed 0 --out runs/boat
    gaming-gym evaluate runs/boat                 # or an env's scripted policy: ENV_ID:exploit
    gaming-gym report runs/boat-s0 runs/boat-s1   # one Goodhart table over seeds
    gaming-gym render runs/boat --out boat.gif
    gaming-gym experiment experiments/optimisation_pressure.toml   # cells x seeds, on Ray
    gaming-gym bench --quick                      # every mitigation on every env: a leaderboard
    gaming-gym demo

Custom envs: ``--import my_envs`` (a module, or a .py file) before the command registers them,
as do installed packages through the ``gaming_gym.envs`` entry point.

Bad input (an unknown env, a bad knob or setting, a missing or corrupt run directory, an
unwritable output) prints one line and exits with status 2; ``--traceback`` shows the full
traceback instead. Anything else is a bug, and shows its traceback.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym

import gaming_gym
from gaming_gym.agents import AGENTS
from gaming_gym.agents.ppo.config import MAX_SEED
from gaming_gym.errors import (
    ConfigError,
    GamingGymError,
    MetricError,
    RunExistsError,
    one_line,
    one_line_warnings,
)
from gaming_gym.evaluation import evaluate, reference_returns
from gaming_gym.kernel import REFERENCE_POLICY_NAMES, Policy, seeded_torch
from gaming_gym.metrics import describe_env, normalise
from gaming_gym.policies import reference_policy
from gaming_gym.registry import import_custom_envs
from gaming_gym.values import knob_values, setting_values

# --- commands -------------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    """One line per registered gameable env: proxy / true objective / known exploit; with
    ``--verbose``, also the training defaults ``train`` uses for it."""
    from gaming_gym.agents.ppo.config import training_defaults

    for env_id in gaming_gym.gameable_env_ids():
        summary = _kernel(env_id).summary
        line = f"proxy: {summary['proxy']} | true: {summary['true']} | exploit: {summary['exploit']}"
        print(f"{env_id:<34} {line}")
        if args.verbose:
            print(f"{'':<34} train defaults: {training_defaults(env_id)}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """The mitigation benchmark (gaming_gym.bench): its leaderboard, detector table and figures."""
    import time

    from gaming_gym.bench import run_bench

    started, profile = time.perf_counter(), "quick" if args.quick else args.profile or "full"
    out = args.out or f"bench_out/{profile}"
    files = run_bench(profile, out, args.engine, not args.quiet, address=args.address)
    print(f"done in {time.perf_counter() - started:.0f} s: " + ", ".join(str(p) for p in files.values()))
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    """Run an experiment file (every cell on every seed), then its tables, figures and analyses."""
    from gaming_gym.spec import check_run_count, check_spec, load_spec
    from gaming_gym.sweep import run_sweep

    spec = load_spec(args.file, args.max_runs)
    spec = spec.with_overrides(args.seeds, total_timesteps=args.steps, device=args.device)
    check_run_count(len(spec.cells), len(spec.seeds), args.max_runs)
    check_spec(spec)  # again, with the overrides
    out = args.out or f"runs/{Path(args.file).stem}"
    result = run_sweep(spec, out, engine=args.engine, address=args.address, progress=not args.quiet)
    figures = ", ".join(str(p) for p in (result.comparison, result.phase_diagram) if p is not None)
    print(
        f"done in {result.seconds:.0f} s ({result.trained} runs trained, {result.skipped} already "
        f"finished): table {result.table}; figures {figures}"
    )
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from gaming_gym.experiment import train_experiment

    _require_env(args.env)
    out = args.out or f"runs/{_short_name(args.env)}-{args.reward}-s{args.seed}"
    settings = {"seed": args.seed, "device": args.device}
    if args.reward != "proxy":  # every agent's default; DPO learns from preferences, not a reward
        settings["reward"] = args.reward
    if args.steps is not None:
        settings["total_timesteps"] = args.steps
    if args.num_envs is not None:
        settings["num_envs"] = args.num_envs
    if args.reward_model is not None:
        settings["reward_model"] = args.reward_model
    settings.update(setting_values(args.set, args.mitigation))
    if args.eval_knob:
        settings["deploy_knobs"] = knob_values(args.eval_knob, "--eval-knob")
    run = train_experiment(
        args.env, out, args.agent, knob_values(args.knob), progress=not args.quiet, **settings
    )
    print(run.report.summary())
    if run.shift is not None:
        print(run.shift.summary())
    print(f"run directory: {run.run_dir}  (curve: {run.curve.name}, episodes: {run.scatter.name})")
    return 0


def cmd_reward_model(args: argparse.Namespace) -> int:
    """Collect the env's rater comparisons, fit a Bradley-Terry reward model, save it, report it."""
    from gaming_gym.rlhf import RewardModelConfig, save_reward_model, train_reward_model

    _require_env(args.env)
    config = RewardModelConfig(
        env_id=args.env, knobs=knob_values(args.knob), comparisons=args.comparisons, seed=args.seed
    )
    out = Path(args.out or f"runs/{_short_name(args.env)}-reward-model-{args.comparisons}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RunExistsError(f"{out} exists and is not an empty folder; give another --out")
    model, report = train_reward_model(config, device=args.device)
    save_reward_model(model, config, report, out)
    print(report.summary())
    print(f"reward model: {out}  (train against it: gaming-gym train {args.env} --reward-model {out})")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Mean proxy and true return of a trained run or a scripted policy, raw and normalised.

    The policy samples from torch's RNG seeded with ``--seed`` (forked, so nothing else is
    disturbed): the same command prints the same numbers."""
    env_id, knobs, policy, label = _resolve_policy(args.target, knob_values(args.knob), args.deterministic)
    with seeded_torch(args.seed):
        returns = evaluate(policy, env_id, episodes=args.episodes, seed=args.seed, knobs=knobs)
    references = reference_returns(env_id, knobs)
    proxy = _normalised(returns.proxy, references["random"].proxy, references["intended"].proxy)
    true = _normalised(returns.true, references["random"].true, references["intended"].true)
    print(f"{label} on {describe_env(env_id, knobs)}, {args.episodes} episodes, seed {args.seed}")
    print(
        f"  proxy return  {returns.proxy.mean():10.3f} +- {returns.proxy.std():.3f}   normalised {proxy:7.3f}"
    )
    print(f"  true return   {returns.true.mean():10.3f} +- {returns.true.std():.3f}   normalised {true:7.3f}")
    print(f"  Goodhart gap  {proxy - true:7.3f}  (normalised proxy - normalised true; 0 random, 1 intended)")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """The Goodhart table of one run or over several, computed afresh from their evaluations."""
    from gaming_gym.experiment import report_over_runs, run_report, shift_over_runs

    if len(args.runs) == 1 and args.out is None:
        print(run_report(args.runs[0]).summary())
        shift = shift_over_runs(args.runs)
        if shift is not None:
            print(shift.summary())
        return 0
    out = args.out or "report_out"
    report, curve = report_over_runs(args.runs, out)
    print(report.summary())
    shift = shift_over_runs(args.runs, out)
    if shift is not None:
        print(shift.summary())
    print(f"combined report: {Path(out) / 'goodhart.json'}, curve: {curve}")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from gaming_gym.render import record_rollout

    env_id, knobs, policy, label = _resolve_policy(args.target, knob_values(args.knob), args.deterministic)
    with seeded_torch(args.seed):
        proxy, true, path = record_rollout(
            env_id, policy, args.out, seed=args.seed, max_frames=args.max_frames, knobs=knobs
        )
    print(f"{label} on {env_id}: proxy return {proxy:.2f}, true return {true:.3f} -> {path}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Train PPO on BoatRace over several seeds at once (CPU): the table across seeds, the curves,
    a rollout GIF (:mod:`gaming_gym.demo`)."""
    from gaming_gym.demo import DEMO_ENV, describe, run_demo

    seeds = [args.seed] if args.seed is not None else args.seeds
    print(
        f"Training PPO on {DEMO_ENV}'s game score, seeds {', '.join(map(str, seeds))} as one stack on the "
        "CPU: watch each learn to race (proxy and true return rise together), then leave the race for "
        "the lagoon (the proxy keeps rising, the true return falls)."
    )
    demo = run_demo(args.out, seeds, args.steps, args.threads, progress=not args.quiet)
    print(describe(demo))
    return 0


# --- helpers --------------------------------------------------------------------------------------


def _normalised(returns, random, intended) -> float:
    try:
        return float(normalise(returns.mean(), random.mean(), intended.mean()))
    except ValueError as error:  # degenerate references: the env's, not a bug here
        raise MetricError(str(error)) from error


def _kernel(env_id: str):
    env = gym.make_vec(env_id, num_envs=1)
    try:
        return env.unwrapped.kernel
    finally:
        env.close()


def _require_env(env_id: str) -> None:
    if env_id not in gaming_gym.gameable_env_ids():
        raise ConfigError(
            f"unknown env {env_id!r}; registered gameable envs: {', '.join(gaming_gym.gameable_env_ids())}"
        )


def _short_name(env_id: str) -> str:
    return env_id.split("/")[-1]


def _resolve_policy(
    target: str, knobs: dict[str, Any], deterministic: bool = False
) -> tuple[str, dict[str, Any], Policy, str]:
    """A run directory, or ``ENV_ID:intended|exploit|random``, as (env id, knobs, policy, label).

    ``deterministic`` makes a trained agent act greedily (the mode of its action distribution).
    """
    if Path(target).is_dir():
        from gaming_gym.agents import load_run_policy

        policy, saved = load_run_policy(target, deterministic)
        return saved["env_id"], {**saved.get("knobs", {}), **knobs}, policy, f"agent {target}"
    env_id, sep, name = target.rpartition(":")
    if not sep or not env_id:
        raise ConfigError(
            f"{target!r} is neither a run directory nor ENV_ID:POLICY (POLICY one of "
            f"{', '.join((*REFERENCE_POLICY_NAMES, 'random'))})"
        )
    _require_env(env_id)
    return env_id, knobs, reference_policy(env_id, name, knobs, seed=0), f"{name} policy"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gaming-gym", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--traceback",
        action="store_true",
        help="on bad input, show the full traceback instead of one line",
    )
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import a module or .py file that registers custom envs (repeatable)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    listing = commands.add_parser("list", help="list the registered gameable envs")
    listing.add_argument("--verbose", action="store_true", help="also each env's training defaults")
    listing.set_defaults(run=cmd_list)

    train = commands.add_parser("train", help="train an agent, evaluate along the way, write a run directory")
    train.add_argument("env", help="env id, e.g. GamingGym/BoatRace-v1")
    train.add_argument(
        "--agent",
        default="ppo",
        help=f"one of {', '.join(AGENTS)} (default: ppo); ppo and sb3 start from the env's tuned "
        "settings; dpo learns offline from --reward-model's comparisons",
    )
    train.add_argument(
        "--steps",
        type=int,
        default=None,
        help="total env steps, rounded down to whole rollouts (num_envs x steps per rollout); "
        "default: the env's tuned budget (gaming-gym list --verbose shows each env's)",
    )
    train.add_argument("--seed", type=seed, default=0)
    train.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, mps")
    train.add_argument(
        "--reward", choices=("proxy", "true"), default="proxy", help="what the agent maximises"
    )
    train.add_argument(
        "--num-envs",
        type=int,
        default=None,
        help="parallel envs (default: the env's; gaming-gym list --verbose)",
    )
    train.add_argument("--knob", action="append", metavar="NAME=VALUE", help="env knob (repeatable)")
    train.add_argument(
        "--eval-knob",
        action="append",
        metavar="NAME=VALUE",
        help="a knob of a deployment setting every evaluation also plays (repeatable): the shift gap",
    )
    train.add_argument(
        "--set",
        action="append",
        metavar="NAME=VALUE",
        help="training setting (a PPOConfig field, for either agent), e.g. hidden_sizes=(16,16) or "
        "eval_every=5, or a chosen mitigation's, e.g. kl_initial.beta=0.1 (repeatable)",
    )
    train.add_argument(
        "--mitigation",
        action="append",
        metavar="NAME",
        help="a mitigation of Goodhart's law (repeatable, applied in order): kl_initial, kl_reference, "
        "early_stopping, or one registered by an --import; its settings with --set NAME.SETTING=VALUE",
    )
    train.add_argument(
        "--reward-model",
        default=None,
        metavar="PATH",
        help="train against a learned reward model (a folder from `gaming-gym reward-model`) "
        "instead of the env's proxy; evaluations report its score as the proxy",
    )
    train.add_argument("--out", default=None, help="run directory (default: runs/ENV-REWARD-sSEED)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(run=cmd_train)

    reward_model = commands.add_parser(
        "reward-model", help="fit a Bradley-Terry reward model to the env's rater comparisons (RLHF)"
    )
    reward_model.add_argument("env", help="env id, e.g. GamingGym/ConfidentRater-v0")
    reward_model.add_argument("--comparisons", type=int, default=3000, help="preference pairs (default 3000)")
    reward_model.add_argument("--seed", type=seed, default=0)
    reward_model.add_argument("--knob", action="append", metavar="NAME=VALUE", help="env knob (repeatable)")
    reward_model.add_argument("--device", default="cpu", help="cpu (default), cuda, mps or auto")
    reward_model.add_argument("--out", default=None, help="folder (default: runs/ENV-reward-model-N)")
    reward_model.set_defaults(run=cmd_reward_model)

    evaluate_ = commands.add_parser("evaluate", help="proxy and true returns of a run or a scripted policy")
    evaluate_.add_argument("target", help="RUN_DIR, or ENV_ID:intended|exploit|random")
    evaluate_.add_argument("--episodes", type=int, default=32)
    evaluate_.add_argument("--seed", type=seed, default=0)
    evaluate_.add_argument("--knob", action="append", metavar="NAME=VALUE")
    evaluate_.add_argument(
        "--deterministic", action="store_true", help="a trained agent acts greedily instead of sampling"
    )
    evaluate_.set_defaults(run=cmd_evaluate)

    report = commands.add_parser("report", help="Goodhart table (and curve) of one run or over seeds")
    report.add_argument("runs", nargs="+", help="run directories (several: combined over seeds)")
    report.add_argument("--out", default=None, help="folder for the combined report and curve")
    report.set_defaults(run=cmd_report)

    render = commands.add_parser("render", help="write a rollout video with proxy and hidden true score")
    render.add_argument("target", help="RUN_DIR, or ENV_ID:intended|exploit|random")
    render.add_argument("--out", required=True, help="rollout.gif or rollout.mp4")
    render.add_argument("--seed", type=seed, default=0)
    render.add_argument("--max-frames", type=int, default=600)
    render.add_argument("--knob", action="append", metavar="NAME=VALUE")
    render.add_argument(
        "--deterministic", action="store_true", help="a trained agent acts greedily instead of sampling"
    )
    render.set_defaults(run=cmd_render)

    experiment = commands.add_parser(
        "experiment",
        aliases=["sweep"],
        help="run an experiment file (TOML: a grid or named conditions, x seeds): tables, figures, "
        "analyses; resumable",
    )
    experiment.add_argument("file", help="experiment file (TOML; see gaming_gym/spec.py or experiments/)")
    experiment.add_argument("--seeds", type=seed, nargs="+", default=None, help="seeds (default: the file's)")
    experiment.add_argument("--steps", type=int, default=None, help="env steps per run (default: the file's)")
    experiment.add_argument(
        "--device", default=None, help="auto, cpu, cuda or mps (default: the file's, or auto)"
    )
    experiment.add_argument(
        "--out", default=None, help="output folder (default: runs/FILE_STEM); re-running resumes"
    )
    _add_engine(experiment)
    experiment.add_argument(
        "--max-runs", type=int, default=10_000, help="refuse more runs (cells x seeds) than this (10,000)"
    )
    experiment.add_argument("--quiet", action="store_true", help="no progress bars")
    experiment.set_defaults(run=cmd_experiment)

    bench = commands.add_parser(
        "bench", help="the mitigation benchmark: tune on seeds 0-2, report on 5-9, leaderboard; resumable"
    )
    profile = bench.add_mutually_exclusive_group()
    profile.add_argument("--quick", action="store_true", help="3 envs, none + 2 mitigations, small budgets")
    profile.add_argument(
        "--profile", choices=("full", "quick", "smoke"), default=None, help="(default: full)"
    )
    bench.add_argument(
        "--out", default=None, help="output folder (default: bench_out/PROFILE); re-run resumes"
    )
    _add_engine(bench)
    bench.add_argument("--quiet", action="store_true", help="no progress bars")
    bench.set_defaults(run=cmd_bench)

    demo = commands.add_parser(
        "demo", help="train PPO on BoatRace over 4 seeds at once (CPU): table across seeds, curves, GIF"
    )
    demo.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    demo.add_argument(
        "--steps", type=int, default=None, help="training env steps a seed (default: PPO's for BoatRace)"
    )
    which = demo.add_mutually_exclusive_group()
    which.add_argument("--seeds", type=seed, nargs="+", default=[0, 1, 2, 3], help="seeds (default: 0 1 2 3)")
    which.add_argument("--seed", type=seed, default=None, help="one seed alone (instead of --seeds)")
    demo.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.set_defaults(run=cmd_demo)
    return parser


def seed(text: str) -> int:
    """A ``--seed``: an int from 0 to 2**62 (argparse refuses anything else in one line)."""
    value = int(text)
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"a seed is an int from 0 to 2**62, got {text}")
    return value


def _add_engine(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--engine",
        choices=("auto", "ray", "local"),
        default="auto",
        help="ray: tasks in parallel on Ray (a local instance unless --address); local: one after "
        "another in this process; auto (default): ray when installed",
    )
    command.add_argument("--address", default=None, help="a Ray cluster's address (default: start Ray here)")


USER_ERRORS = (GamingGymError, gym.error.Error)
"""Errors that mean bad input: gaming_gym's own, and Gymnasium's (an unknown env id)."""


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = one_line_warnings(args.command, warnings.showwarning)
        try:
            import_custom_envs(args.imports)
            return args.run(args)
        except (*USER_ERRORS, OSError) as error:
            if args.traceback:
                raise
            print(f"gaming-gym {args.command}: error: {one_line(error)}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:  # training saved a checkpoint of its last whole iteration
            print(
                f"gaming-gym {args.command}: interrupted; re-run the same command to resume", file=sys.stderr
            )
            return 130


if __name__ == "__main__":
    sys.exit(main())
