r"""Which training budget gives the effectiveness judge that reads real images best?

    python -m benchmarks.judge_budget dataset=fashion_mnist dataset.x_form=classes
    python -m benchmarks.judge_budget --with-image-model dataset=fashion_mnist dataset.x_form=classes \
        model.image.net=mlp model.image.eps_dim=8 model.image.likelihood=logistic model.image.kl_weight=64

The judge (:func:`~cauvade_pyro.metrics.train_judge`, never in a loss) vouches for the flips: that an image
decoded with x changed shows the new class. A judge that misreads real images cannot vouch for more than it reads
right, and on diverse images it misreads more, so a weak judge penalises an image model for the variety of the
data. For each budget (images × epochs) this trains a judge on its own rendered images, as the fit does, and
reports the share of the data set's real test images (the first ``--num-images``) whose x and y it reads right:
the criterion the dataset's default budget (``judge_images``, ``judge_epochs`` in its config) is chosen on, which
no image model enters. With ``--with-image-model``, the config's shared image model (trained if not cached) is
also scored by :func:`~cauvade_pyro.evaluate.effectiveness` under each judge: how much the flips depend on the
judge (a diagnostic, not a selection).
Writes ``benchmarks/results/judge_budget_<dataset>[_classes].json`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from benchmarks.provenance import git_sha

RESULTS = Path(__file__).resolve().parent / "results"
BUDGETS = ((8000, 3), (30000, 6), (60000, 10), (60000, 20))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.judge_budget", description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the fit config, e.g. dataset=fashion_mnist")
    parser.add_argument("--budgets", default=",".join(f"{n}x{e}" for n, e in BUDGETS),
                        help="comma-separated IMAGESxEPOCHS (default %(default)s)")
    parser.add_argument("--num-images", type=int, default=3000, help="real test images read by each judge")
    parser.add_argument("--with-image-model", action="store_true", help="also score the config's image model")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    try:
        args.budgets = [tuple(int(v) for v in b.split("x")) for b in args.budgets.split(",")]
    except ValueError:
        parser.error(f"--budgets: expected IMAGESxEPOCHS[,...], got {args.budgets!r}")
    return args


def run(args: argparse.Namespace, cfg) -> dict:
    import torch

    from cauvade_pyro.evaluate import effectiveness, judge_reads_real
    from cauvade_pyro.fit import build_dataset
    from cauvade_pyro.inference import resolve_device, seed_everything
    from cauvade_pyro.members import shared_image_model
    from cauvade_pyro.metrics import train_judge

    device = resolve_device(str(cfg.device))
    dataset = build_dataset(cfg)
    image_model = None
    if args.with_image_model:
        image_model, _, _ = shared_image_model(cfg, dataset, device, progress=False)
    rows = []
    for num_images, epochs in args.budgets:
        started = time.perf_counter()
        judge = train_judge(dataset, seed=int(cfg.eval.judge_seed), num_images=num_images, epochs=epochs,
                            device=str(device), cache_dir=cfg.cache_dir)
        train_s = time.perf_counter() - started
        real = judge_reads_real(judge, dataset.test, args.num_images)
        row = {"judge_images": num_images, "judge_epochs": epochs, "train_or_load_s": round(train_s, 1),
               "real_shape_read_right": real["shape"], "real_hue_read_right": real["hue"]}
        if image_model is not None:
            seed_everything(0)
            row["image_model_effectiveness"] = effectiveness(image_model, judge, dataset.test)
        rows.append(row)
        print(json.dumps(row), flush=True)
    best = max(rows, key=lambda r: r["real_shape_read_right"])
    return {"git_sha": git_sha(), "dataset": dataset.generating_params, "torch_threads": torch.get_num_threads(),
            "num_real_images": min(args.num_images, len(dataset.test["x"])), "rows": rows,
            "best_budget": {"judge_images": best["judge_images"], "judge_epochs": best["judge_epochs"]}}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from cauvade_pyro.config import ConfigError, compose_config

    torch.set_num_threads(args.threads)
    try:
        cfg = compose_config(list(args.overrides))
    except ConfigError as error:
        print(f"benchmarks.judge_budget: {error}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    result = {"command": "python -m benchmarks.judge_budget " + " ".join(sys.argv[1:] if argv is None else argv),
              **run(args, cfg), "wall_time_s": None}
    result["wall_time_s"] = round(time.perf_counter() - started, 1)
    name = str(cfg.dataset.name) + ("_classes" if cfg.dataset.get("x_form") == "classes" else "")
    out = args.out or RESULTS / f"judge_budget_{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
