"""``se-numpy ablate TABLE``: the paper's ablation tables, several seeds, local processes or Dask.

``add_commands(subparsers)`` registers the command on the main parser (se_numpy/cli.py).
"""
import os
import shlex
import sys
import time

from .tables import TABLE_NAMES

DEFAULT_MODEL = "se_tiny_resnet"


def add_commands(subparsers):
    parser = subparsers.add_parser(
        "ablate", help="the paper's ablations (Tables 10-16), several seeds, with statistics",
        description="Train every variant of one of the paper's ablation tables (or all) for "
                    "several seeds, in parallel processes or on a Dask cluster; write "
                    "summary.json, a text table and a figure. Finished runs in --out are "
                    "reused, killed ones resume from their checkpoints.")
    add = parser.add_argument
    add("table", nargs="+", choices=TABLE_NAMES + ("all",), metavar="TABLE",
        help="reduction (Table 10), squeeze (11), excitation (12), stages (13), "
             "integration (14), se3x3 (15), nosqueeze (16), attention (SE against "
             "Effective SE, ECA, CBAM, scSE, Gather-Excite and Selective Kernel), or all; "
             "several tables "
             "run in one pool and share their common runs")
    add("--model", default=DEFAULT_MODEL,
        help=f"an SE model of the registry (default {DEFAULT_MODEL}); its plain "
             "counterpart is the no-SE row")
    add("--data", default="synthetic",
        help="synthetic[:SEED] | cifar10:DIR | cifar100:DIR | mnist:DIR | fashion-mnist:DIR "
             "(default synthetic); on Dask, a DIR must exist at the same path on every worker")
    add("--seeds", type=int, default=3, help="seeds per variant (default 3)")
    add("--epochs", type=int, help="epochs per run (default: the budget's)")
    add("--train-limit", type=int, help="training images per run (default: the budget's)")
    add("--workers", type=int, default=os.cpu_count() or 1,
        help="local worker processes, one thread each (default: the number of cores)")
    add("--scheduler", metavar="ADDRESS",
        help="run on the Dask cluster whose scheduler is at ADDRESS (tcp://HOST:8786)")
    add("--out", help="output directory (default runs/ablate-TABLE)")
    add("--fast", action="store_true", help="a smoke-test budget: minutes, not hours")
    add("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=_ablate)


def _budget(args):
    from .experiment import DEFAULT_BUDGET, FAST_BUDGET
    budget = dict(FAST_BUDGET if args.fast else DEFAULT_BUDGET)
    for key in ("epochs", "train_limit"):
        value = getattr(args, key)
        if value is not None:
            if value < 1:
                raise ValueError(f"--{key.replace('_', '-')}: expected a positive integer, "
                                 f"got {value}")
            budget[key] = value
    return budget


def run_ablation(table, model=DEFAULT_MODEL, data="synthetic", seeds=3, budget=None,
                 workers=1, scheduler=None, out=None, quiet=False, command=None, log=print):
    """Plan, run and report an ablation; returns (paths written, text table, counts).

    ``table`` is a table name, "all", or a list of names.
    """
    from .executors import connect, run_dask, run_local
    from .experiment import DEFAULT_BUDGET, plan_ablation, summarise
    from .report import write_report
    from .runs import finished_result

    budget = dict(DEFAULT_BUDGET if budget is None else budget)
    tables = [table] if isinstance(table, str) else list(table)
    names = list(TABLE_NAMES) if "all" in tables else list(dict.fromkeys(tables))
    out = out or os.path.join("runs", "ablate-" + ("all" if "all" in tables else "+".join(names)))
    if scheduler:
        connect(scheduler).close()      # fail in seconds, before the data set is built
    plan = plan_ablation(names, model, seeds, budget, data=data)
    specs = [run.spec.to_dict() for run in plan.runs]
    # finished runs are read here; only the others go to the workers
    results = [finished_result(spec, out) for spec in specs]
    todo = [index for index, result in enumerate(results) if result is None]
    where = f"Dask at {scheduler}" if scheduler else f"{workers} local processes"
    log(f"{len(specs)} runs ({', '.join(names)}; {seeds} seeds), {len(todo)} to train on "
        f"{where}, output {out}")
    start = time.perf_counter()
    if todo:
        pending = [specs[index] for index in todo]
        done = (run_dask(pending, out, scheduler, quiet) if scheduler
                else run_local(pending, out, min(workers, len(pending)), quiet))
        for index, result in zip(todo, done):
            results[index] = result
    wall = time.perf_counter() - start
    trained = sum(result["trained"] for result in results)
    summary = summarise(plan, results)
    paths, text = write_report(summary, out, command or "", dict(budget, model=model, data=data),
                               wall, trained, len(results) - trained)
    return paths, text, {"trained": trained, "reused": len(results) - trained, "wall": wall}


def _ablate(args):
    command = "se-numpy " + " ".join(shlex.quote(part) for part in sys.argv[1:])
    try:
        if args.seeds < 1:
            raise ValueError(f"--seeds: expected a positive integer, got {args.seeds}")
        if args.workers < 1:
            raise ValueError(f"--workers: expected a positive integer, got {args.workers}")
        paths, text, counts = run_ablation(
            args.table, model=args.model, data=args.data, seeds=args.seeds,
            budget=_budget(args), workers=args.workers, scheduler=args.scheduler,
            out=args.out, quiet=args.quiet, command=command,
            log=(lambda message: None) if args.quiet else print)
    except (ValueError, TypeError, RuntimeError, FileNotFoundError) as error:
        print(f"se-numpy ablate: error: {error}", file=sys.stderr)
        return 2
    print()
    print(text, end="")
    print(f"\n{counts['trained']} runs trained, {counts['reused']} reused from earlier, "
          f"{counts['wall']:.1f} s wall time")
    print(f"wrote {paths['summary']}, {paths['table']}, {', '.join(paths['figures'])}")
    return 0
