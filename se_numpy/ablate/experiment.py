"""An ablation: tables x variants x seeds -> runs -> per-variant statistics.

    plan = plan_ablation(["reduction"], model="se_tiny_resnet", seeds=3, budget=DEFAULT_BUDGET)
    results = run_local([run.spec.to_dict() for run in plan.runs], "runs/ablate-reduction", 2)
    tables = summarise(plan, results)

Runs that two tables share (the baseline SE net, the net without SE) are
planned once: their spec, and so their directory, is the same.
"""
from dataclasses import dataclass, field

from .. import models
from ..analysis.counting import count_flops, count_params
from .runs import RunSpec
from .stats import SIGNIFICANCE_LEVEL, mean_and_std, paired_t_test
from .tables import TABLE_NAMES, make_tables, variant_options

# Settings shared by every run (those of the demo, which learns on the embedded data).
TRAINING = dict(batch_size=64, lr=0.15, momentum=0.9, weight_decay=5e-4, schedule="cosine",
                backend="numba", dtype="float32")
# budgets: images per epoch and epochs (see docs/ablations.md for how they were chosen)
FAST_BUDGET = dict(train_limit=512, test_limit=500, epochs=2)
# the demo's 6 000 images x 8 epochs: at 4 000 x 6 (and 3 000 x 5) the SE net had not yet
# found the data's cue on seed 0 and ended below the plain net (77.8 % against 79.6 %)
DEFAULT_BUDGET = dict(train_limit=6000, test_limit=1000, epochs=8)


@dataclass
class PlannedRun:
    spec: RunSpec
    table_rows: list = field(default_factory=list)    # (table key, variant name)


@dataclass
class Plan:
    model: str
    seeds: int
    tables: dict            # key -> Table
    runs: list              # PlannedRun, one per distinct spec
    rows: dict              # (table key, variant name) -> [run index per seed]
    costs: dict             # variant options key -> (params, MFLOPs)
    image_shape: tuple


def plain_model_name(model):
    """The same network without SE: ``se_x`` -> ``x``."""
    if not model.startswith("se_") or model[3:] not in models.names():
        raise ValueError(f"--model: expected an SE model whose plain counterpart is registered "
                         f"(se_NAME with NAME in the registry), got {model!r}")
    return model[3:]


def _check_applies(table, model, image_shape, num_classes):
    """Build every variant once (cheaply, at the data's size) so a table that does not
    apply to ``model`` fails before any training, with the model's own reason."""
    costs = {}
    for variant in table.variants:
        options = variant_options(variant, model)
        name = model if options is not None else plain_model_name(model)
        try:
            network = models.create(name, in_channels=image_shape[0], num_classes=num_classes,
                                    **(options or {}))
        except (TypeError, ValueError) as error:
            raise ValueError(f"table {table.key!r} does not apply to {model}: variant "
                             f"{variant.name!r}: {error}") from None
        costs[variant.name] = (count_params(network),
                               count_flops(network, (1,) + tuple(image_shape)) / 1e6)
    return costs


def plan_ablation(table_names, model, seeds, budget, data="synthetic", dataset=None):
    """Every run the tables need, each distinct (model, options, training) once.

    ``dataset`` (an ``ImageDataset``) gives the image shape and classes for
    counting; it is loaded from ``data`` when not given.
    """
    if seeds < 1:
        raise ValueError(f"seeds: expected at least 1, got {seeds}")
    if int(budget.get("epochs", 0)) < 1:
        raise ValueError(f"budget: expected at least 1 epoch, got {budget.get('epochs')}")
    unknown = [name for name in table_names if name not in TABLE_NAMES]
    if unknown:
        raise ValueError(f"unknown table {unknown[0]!r}: expected one of "
                         f"{', '.join(TABLE_NAMES)} or all")
    if dataset is None:
        from ..data.registry import load_dataset
        dataset = load_dataset(data, train_limit=1, test_limit=1)   # its shape and classes
    plain_model_name(model)
    all_tables = make_tables(model)
    tables = {name: all_tables[name] for name in table_names}
    image_shape = tuple(dataset.image_shape)
    runs, index_of, rows, costs = [], {}, {}, {}
    for table in tables.values():
        table_costs = _check_applies(table, model, image_shape, dataset.num_classes)
        for variant in table.variants:
            options = variant_options(variant, model)
            model_name = model if options is not None else plain_model_name(model)
            indices = []
            for seed in range(seeds):
                train = dict(TRAINING, model=model_name, data=data, seed=seed, **budget)
                spec = RunSpec(variant.name, model_name, options, train)
                if spec.key not in index_of:
                    index_of[spec.key] = len(runs)
                    runs.append(PlannedRun(spec))
                runs[index_of[spec.key]].table_rows.append((table.key, variant.name))
                indices.append(index_of[spec.key])
            rows[(table.key, variant.name)] = indices
            costs[(table.key, variant.name)] = table_costs[variant.name]
    return Plan(model, seeds, tables, runs, rows, costs, image_shape)


def _describe(options):
    if options is None:
        return "no SE blocks"
    return ", ".join(f"{key}={value}" for key, value in sorted(options.items()))


def summarise(plan, results):
    """Per table, per variant: settings, cost, per-seed errors, mean, std, paired test.

    ``results`` are the run results in the order of ``plan.runs``.
    """
    summary = {}
    for table in plan.tables.values():
        baseline_errors = [results[i]["test_error"] for i in plan.rows[(table.key, table.baseline)]]
        rows = []
        for variant in table.variants:
            indices = plan.rows[(table.key, variant.name)]
            errors = [results[i]["test_error"] for i in indices]
            mean, std = mean_and_std(errors)
            params, mflops = plan.costs[(table.key, variant.name)]
            row = {"name": variant.name, "model": plan.runs[indices[0]].spec.model,
                   "settings": plan.runs[indices[0]].spec.options,
                   "description": _describe(plan.runs[indices[0]].spec.options),
                   "params": params, "mflops": mflops, "seeds": list(range(len(errors))),
                   "test_errors": errors, "mean": mean, "std": std,
                   "weights_sha256": [results[i]["weights_sha256"] for i in indices],
                   "run_seconds": [results[i]["seconds"] for i in indices],
                   "run_dirs": [results[i]["run_dir"] for i in indices],
                   "baseline": variant.name == table.baseline,
                   "paper_top1": variant.paper_top1, "paper_table": variant.paper_table}
            if variant.name != table.baseline:
                test = paired_t_test(errors, baseline_errors)
                row.update(difference=test["mean_difference"], t=test["t"], p=test["p"],
                           significant=test["p"] is not None and test["p"] < SIGNIFICANCE_LEVEL)
            else:
                row.update(difference=0.0, t=None, p=None, significant=None)
            rows.append(row)
        summary[table.key] = {
            "table": table.key, "paper_table": table.number, "title": table.title,
            "baseline": table.baseline, "model": plan.model, "seeds": plan.seeds,
            "test": "paired t-test over seeds (two-sided), alpha = 0.05",
            "machine_seconds": sum(sum(row["run_seconds"]) for row in rows),
            "variants": rows}
    return summary
