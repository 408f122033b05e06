"""Command line: ``jnigt train``, ``jnigt plot``, ``jnigt theory``.

``jnigt train`` with no options runs the small default comparison (Rennala NIGT against AFedPG on
inverted_pendulum, n = 10, h_i = sqrt(i)) into ``runs/demo`` and draws ``runs/demo/return_vs_time.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import typing

DEFAULT_METHODS = "rennala+nigt,afedpg+nigt"


def _config_fields():
    from jnigt.training.config import TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    return TrainConfig, [(f, hints[f.name]) for f in dataclasses.fields(TrainConfig)]


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    TrainConfig, fields = _config_fields()
    doc = {
        "method": "one of rennala, malenia, synchronized, afedpg",
        "optimizer": "nigt or an optax optimizer: sgd, adam, adamw, rmsprop, adagrad, lion",
        "env": "a jnigt_envs name (e.g. inverted_pendulum, hopper, mirrored_inverted_pendulum, lqr)",
        "backend": "brax backend: spring, generalized, positional, mjx; 'none' for our envs",
        "step_model": "per-agent seconds per env step: equal, sqrt, decreasing, random",
        "comm_model": "per-agent communication: zero, sqrt, sqrt_d, or a number",
    }
    for f, hint in fields:
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        help_ = f"{doc.get(f.name, '')} (default: {default})".strip()
        if f.name == "hidden_sizes":
            parser.add_argument(flag, type=int, nargs="*", default=None, help=help_)
        elif hint in (int, float, str) or f.name in ("backend",):
            typ = str if f.name == "backend" else hint
            parser.add_argument(flag, type=typ, default=None, help=help_)
        elif hint == (int | None):
            parser.add_argument(flag, type=int, default=None, help=help_)
        else:
            parser.add_argument(flag, type=str, default=None, help=help_)


def _config_from_args(args, method: str | None = None, optimizer: str | None = None):
    TrainConfig, fields = _config_fields()
    kw = {}
    for f, _ in fields:
        v = getattr(args, f.name)
        if v is None:
            continue
        if f.name == "hidden_sizes":
            v = tuple(v)
        if f.name == "backend" and v.lower() == "none":
            v = None
        kw[f.name] = v
    if method is not None:
        kw["method"] = method
    if optimizer is not None:
        kw["optimizer"] = optimizer
    return TrainConfig(**kw)


def _parse_methods(spec: str):
    out = []
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        method, _, optimizer = item.partition("+")
        out.append((method, optimizer or "nigt"))
    if not out:
        raise ValueError("--methods must list at least one method, e.g. rennala+nigt,afedpg+nigt")
    return out


def train_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="jnigt train",
        description="Train policies with simulated asynchronous agents; one run per entry of --methods.",
    )
    parser.add_argument(
        "--methods",
        default=None,
        help=f"comma list of method+optimizer to run one after the other, each into "
        f"OUT/<method>+<optimizer> (default when --method is not given: {DEFAULT_METHODS})",
    )
    parser.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    parser.add_argument(
        "--devices", type=int, default=None, help="devices on the agents mesh axis (default: all)"
    )
    parser.add_argument("--pmap", action="store_true", help="use jax.pmap instead of shard_map")
    parser.add_argument("--no-resume", action="store_true", help="start over even if OUT holds a checkpoint")
    parser.add_argument("--no-plot", action="store_true", help="do not draw OUT/return_vs_time.png")
    parser.add_argument(
        "--coordinator",
        default=None,
        help="multi-host: coordinator address host:port (or env JNIGT_COORDINATOR)",
    )
    parser.add_argument("--num-processes", type=int, default=None, help="multi-host: number of processes")
    parser.add_argument("--process-id", type=int, default=None, help="multi-host: this process's id")
    _add_config_args(parser)
    args = parser.parse_args(argv)

    from jnigt import distributed

    distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    from jnigt.training import train

    if args.methods is not None or args.method is None:
        runs = _parse_methods(args.methods or DEFAULT_METHODS)
    else:
        runs = [(args.method, args.optimizer or "nigt")]
    configs = [_config_from_args(args, m, o) for m, o in runs]  # all checked before any training
    if len(configs) > 1:
        # a comparison: AFedPG steps once per gradient, so give it the same gradient budget
        # (rounds x batch_size arrivals) as the aggregating methods
        configs = [
            dataclasses.replace(c, rounds=c.rounds * c.batch_size, eval_every=c.eval_every * c.batch_size)
            if c.method == "afedpg"
            else c
            for c in configs
        ]
    run_dirs = []
    for config in configs:
        run_dir = os.path.join(args.out, f"{config.method}+{config.optimizer}")
        run_dirs.append(run_dir)
        _, _, rows = train(
            config, run_dir, num_devices=args.devices, use_pmap=args.pmap, resume=not args.no_resume
        )
        last = rows[-1] if rows else {}
        print(
            json.dumps(
                {
                    "run": run_dir,
                    "round": last.get("round"),
                    "time": last.get("time"),
                    "env_steps": last.get("env_steps"),
                    "eval_return": last.get("eval_return"),
                }
            )
        )
    if not args.no_plot and distributed.is_writer():
        from jnigt.plotting import plot_runs

        path = os.path.join(args.out, "return_vs_time.png")
        plot_runs(run_dirs, path)
        print(f"plot: {path}")
    return 0


def plot_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="jnigt plot", description="Draw evaluation return against simulated time for one or many runs."
    )
    parser.add_argument("runs", nargs="+", help="run folders (holding metrics.jsonl) or folders of runs")
    parser.add_argument("--out", default="return_vs_time.png", help="PNG path (default: return_vs_time.png)")
    parser.add_argument("--x", default="time", choices=("time", "env_steps", "round"), help="x axis")
    parser.add_argument("--title", default=None)
    args = parser.parse_args(argv)
    from jnigt.plotting import plot_runs

    plot_runs(args.runs, args.out, x=args.x, title=args.title)
    print(f"plot: {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"train": train_main, "plot": plot_main}
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in commands and argv[0] != "theory":
        print("usage: jnigt {train,plot,theory} [options]   (jnigt <command> --help for options)")
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    if argv[0] == "theory":
        from jnigt._theory_cli import theory_main

        return theory_main(argv[1:])
    try:
        return commands[argv[0]](argv[1:])
    except ValueError as e:  # bad input: one clear line, no traceback
        print(f"jnigt {argv[0]}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
