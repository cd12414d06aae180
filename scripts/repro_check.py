"""Reproducibility check (``tox -e repro``): the smoke ablation twice, then against the record.

1. Runs ``python -m omninft_bench.run preset=smoke`` twice with the same seed, each in its own
   output folder and MLflow store, and requires identical final evaluation metrics.
2. Compares those metrics with ``benchmarks/repro_reference.json`` (committed) within
   ``TOLERANCE`` (relative, with an absolute floor), so that a change that silently moves
   results fails.  After an intended change, refresh the record with ``--update`` and commit it.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "benchmarks" / "repro_reference.json"
TOLERANCE = {"rel": 1e-3, "abs": 1e-5}
# Weight-free rewards and metrics until the SynthBind weights ship (see README, Status).
ARGS = ["preset=smoke", "ablation=[gdpo,omninft]", "report=false", "progress=false",
        "rewards={av_offset:1.0,temporal_flickering:0.5}",
        "eval.metrics=[av_offset,av_align,temporal_flickering,motion_smoothness,dynamic_degree]"]


def run_once(folder: Path) -> dict[str, dict[str, float]]:
    """Run the smoke ablation into ``folder``; return {run name: {metric: value}}."""
    folder.mkdir(parents=True)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    cmd = [sys.executable, "-m", "omninft_bench.run", *ARGS, f"out={folder / 'out'}", f"tracking_uri={uri}",
           "experiment=repro"]
    subprocess.run(cmd, check=True, cwd=folder)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("repro")
    metrics: dict[str, dict[str, float]] = {}
    for run in client.search_runs([exp.experiment_id], filter_string="tags.`omninft.role` != 'parent'"):
        name = f"{run.data.tags['variant']}/seed{run.data.tags['seed']}"
        metrics[name] = {k: v for k, v in sorted(run.data.metrics.items()) if k.startswith("eval/")
                         and not k.endswith(("/ci_low", "/ci_high"))}
    return dict(sorted(metrics.items()))


def differences(a: dict, b: dict, rel: float, abs_: float) -> list[str]:
    out = []
    for run in sorted(set(a) | set(b)):
        if run not in a or run not in b:
            out.append(f"{run}: present in only one of the two")
            continue
        for key in sorted(set(a[run]) | set(b[run])):
            x, y = a[run].get(key), b[run].get(key)
            if x is None or y is None:
                out.append(f"{run} {key}: {x} vs {y}")
            elif not math.isclose(x, y, rel_tol=rel, abs_tol=abs_):
                out.append(f"{run} {key}: {x!r} vs {y!r}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true", help="rewrite the committed reference metrics")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        first, second = (run_once(Path(tmp) / name) for name in ("a", "b"))
    same = differences(first, second, 0.0, 0.0)
    if same:
        print("FAIL: two runs with the same seed differ:\n  " + "\n  ".join(same))
        return 1
    print(f"ok: two smoke runs gave identical metrics ({sum(len(v) for v in first.values())} values)")
    if args.update or not REFERENCE.exists():
        REFERENCE.write_text(json.dumps({"args": ARGS, "tolerance": TOLERANCE, "metrics": first}, indent=1) + "\n")
        print(f"wrote {REFERENCE.relative_to(ROOT)}; commit it")
        return 0
    record = json.loads(REFERENCE.read_text())
    moved = differences(record["metrics"], first, TOLERANCE["rel"], TOLERANCE["abs"])
    if moved:
        print(f"FAIL: results moved from {REFERENCE.relative_to(ROOT)} (tolerance {TOLERANCE}):\n  "
              + "\n  ".join(moved))
        return 1
    print(f"ok: matches {REFERENCE.relative_to(ROOT)} within {TOLERANCE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
