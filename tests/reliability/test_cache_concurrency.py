"""Processes sharing one cache agree on who trains each shared model, and a killed lock holder blocks no one.

The first two tests run :func:`cauvade_pyro.cache.load_or_build` in separate Python processes (a build that
sleeps, so they overlap for sure); the last starts two ``python -m cauvade_pyro.fit`` members at once on a fresh
cache and checks the judge and the shared image model were trained once and loaded from the same files.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from filelock import Timeout

from cauvade_pyro.cache import cache_lock, load_or_build

REPO = Path(__file__).resolve().parents[2]

# One process: wait for the go file, then load_or_build a text file; the build sleeps, then counts itself.
WORKER = textwrap.dedent("""
    import json, os, sys, time
    from pathlib import Path
    from cauvade_pyro.cache import load_or_build

    path, go, counter, name = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
    while not go.exists():
        time.sleep(0.01)

    def build():
        print("building", flush=True)
        time.sleep(float(os.environ.get("BUILD_SECONDS", "1.0")))
        with counter.open("a") as handle:
            handle.write(name + "\\n")
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(name)
        os.replace(tmp, path)
        return name

    value, built = load_or_build(path, lambda p: p.read_text(), build)
    print(json.dumps({"name": name, "value": value, "built": built}), flush=True)
""")


def _start(tmp_path, name, **env):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    args = [str(tmp_path / "cache" / "model.txt"), str(tmp_path / "go"), str(tmp_path / "counter.txt"), name]
    return subprocess.Popen([sys.executable, str(script), *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **env})


def test_processes_started_together_build_once_and_all_get_the_built_file(tmp_path):
    workers = [_start(tmp_path, f"worker{i}") for i in range(3)]
    time.sleep(1.0)  # all three are waiting for the go file (imports done or under way)
    (tmp_path / "go").touch()
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    builders = (tmp_path / "counter.txt").read_text().split()
    assert len(builders) == 1, builders
    assert [r["name"] for r in results if r["built"]] == builders
    assert {r["value"] for r in results} == {builders[0]}  # the two waiters loaded what the builder wrote


def test_a_builder_killed_while_holding_the_lock_does_not_block_the_next_one(tmp_path):
    path = tmp_path / "cache" / "model.txt"
    (tmp_path / "go").touch()
    worker = _start(tmp_path, "killed", BUILD_SECONDS="600")
    assert worker.stdout.readline().strip() == "building"  # it holds the lock now
    with pytest.raises(Timeout):
        cache_lock(path, timeout=0.2).acquire()  # really held: a second taker is refused
    worker.send_signal(signal.SIGKILL)
    worker.communicate(timeout=30)
    assert worker.returncode == -signal.SIGKILL and not path.exists()

    def build():
        path.write_text("after the kill")
        return "after the kill"

    # The kernel dropped the dead holder's lock: the next caller takes it at once and builds.
    assert load_or_build(path, lambda p: p.read_text(), build, timeout=10) == ("after the kill", True)
    assert load_or_build(path, lambda p: p.read_text(), build, timeout=10) == ("after the kill", False)


TINY = [
    "dataset.num_train=600", "dataset.num_test=150", "inference.image_epochs=1", "inference.attribute_steps=10",
    "eval.num_samples=30", "eval.grid_samples=4", "eval.judge_images=300", "eval.judge_epochs=1",
    "progress=false", "torch_threads=1",
]


def test_two_members_started_together_on_a_fresh_cache_train_each_shared_model_once(tmp_path):
    cache = tmp_path / "cache"
    env = {**os.environ, "CAUVADE_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    members = [
        subprocess.Popen([sys.executable, "-m", "cauvade_pyro.fit", *TINY, f"inference.gamma={gamma}", "seed=0",
                          f"hydra.run.dir={tmp_path / f'member{gamma}'}"],
                         cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for gamma in (-1, 2)
    ]
    for member in members:
        _, err = member.communicate(timeout=600)
        assert member.returncode == 0, err[-3000:]
    logs = "".join((tmp_path / f"member{gamma}" / "fit.log").read_text() for gamma in (-1, 2))
    # one member trained each shared model, the other waited for it and loaded it
    assert logs.count("judge trained and cached") == 1, logs
    assert logs.count("(trained)") == 1 and logs.count("(loaded from cache)") == 1, logs
    image_models = list((cache / "image_models").glob("*.pt"))
    assert len(image_models) == 1 and len(list(cache.glob("judge-*.pt"))) == 1
    metrics = [json.loads((tmp_path / f"member{gamma}" / "metrics.json").read_text()) for gamma in (-1, 2)]
    assert {m["image_model"] for m in metrics} == {str(image_models[0])}
    assert [m["gamma"] for m in metrics] == [-1.0, 2.0]


def _config(cache, *overrides):
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="cauvade_pyro.conf", version_base="1.3"):
        return compose(config_name="config", overrides=[
            "model.image.net=mlp", "dataset.num_train=64", "dataset.num_test=16",
            "inference.image_epochs=1", "inference.batch_size=16", "progress=false", f"cache_dir={cache}", *overrides])


@pytest.mark.parametrize("diagram", ["confounded_attributes", "latent_response"])
def test_a_shared_model_is_the_same_whichever_member_trains_it(tmp_path, diagram):
    """In a parallel sweep any member may win the lock: what it trains must depend on the cache key only, not on
    the member's seed or on where its global RNG stands."""
    import torch

    from cauvade_pyro.fit import build_dataset
    from cauvade_pyro.members import shared_image_model, shared_latent_base

    states = []
    for member_seed in (0, 5):
        extra = ["model.warmup_epochs=1", "inference.sweep=shared"] if diagram == "latent_response" else []
        cfg = _config(tmp_path / f"cache{member_seed}", f"model={diagram}", *extra, f"seed={member_seed}",
                      f"inference.gamma={member_seed}")
        torch.manual_seed(member_seed)  # the member's global RNG, as the CLI leaves it before the shared model
        dataset = build_dataset(cfg)
        if diagram == "latent_response":
            state, _, trained = shared_latent_base(cfg, dataset, torch.device("cpu"), progress=False)
        else:
            model, _, trained = shared_image_model(cfg, dataset, torch.device("cpu"), progress=False)
            state = model.state_dict()
        assert trained
        states.append(state)
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
