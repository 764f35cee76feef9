"""hunt on the public fault benchmark (``benchmarks/faults/``, one module per case; in the
image: docker/run-benchmark fault_bench). Each case is built from its seed in its own folder,
hunt runs there (the folder is the current one, as Caffe and hunt expect), and its verdict is
scored against the case's key; the case's clean twin must give cause ``none``, exit 0.

Per case and in total: detection, false alarms (twins and healthy cases), cause accuracy,
layer top-1, record precision and recall, fix rate (a fix counts when the key accepts it,
hunt's re-run verified it, and the fixed files stay finite with plain pycaffe on another seed),
seconds per case. Targets beside the figures; a miss exits 1 (``--no-check``: 0).
``--prove`` also trains each case and its twin with plain pycaffe and checks that the fault
fails the way its report says (the case's FAILS) and the twin stays finite.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]
from faults import Case, Key, cases  # noqa: E402
from faults._fixed import Fixed  # noqa: E402
from targets import Targets, add_check_option  # noqa: E402

PLAIN = os.path.join(HERE, "faults", "_plain.py")
#: The iterations hunt trains when the solver sets no max_iter (its own default).
DEFAULT_ITERS = 100


def hunted(case: Case, seed: int, folder: str, clean: bool) -> dict:
    """hunt's verdict on the case (or its twin) built in ``folder``, and its seconds."""
    from caffe_nantools.errors import NanToolsError
    from caffe_nantools.hunt import hunt

    os.makedirs(folder)
    here = os.getcwd()
    os.chdir(folder)
    try:
        solver = case.build(folder, seed, clean=clean)
        began = time.time()
        try:
            report = hunt(solver, workdir="hunt")
        except NanToolsError as e:
            return {"cause": "error", "error": str(e), "seconds": time.time() - began}
        v = report.verdict
        return {
            "cause": str(v.cause),
            "layer": v.layer,
            "records": sorted({r.key for r in v.records} or ([v.record.key] if v.record else [])),
            "fix": report.fix.to_dict() if report.fix is not None else None,
            "return_code": report.return_code,
            "seconds": round(time.time() - began, 2),
        }
    finally:
        os.chdir(here)


def plain(folder: str, solver: str, iters: int, seed=None) -> dict:
    """A plain pycaffe training in ``folder``: finite, or where it went bad, or Caffe's abort."""
    args = [sys.executable, PLAIN, solver, str(iters)] + ([str(seed)] if seed is not None else [])
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([os.path.dirname(HERE), os.environ.get("PYTHONPATH", "")]),
    )
    done = subprocess.run(args, cwd=folder, capture_output=True, text=True, env=env, timeout=600)
    if done.returncode != 0:
        fatal = [l for l in done.stderr.splitlines() if l.startswith("F") or "Error" in l]
        return {"finite": False, "aborted": True, "fatal": (fatal or [done.stderr[-300:]])[-1]}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]), aborted=False)


def fix_holds(key: Key, result: dict, folder: str, seed: int) -> dict:
    fix = result.get("fix")
    if not key.fixes or not fix or not fix.get("files"):
        return {"ok": False, "why": "no fix" if key.fixes else "not scored"}
    files = {k: os.path.join(folder, v) for k, v in fix["files"].items()}  # hunt's are from there
    fixed = Fixed(files["solver"], files["net"])
    accepted = [f.text for f in key.fixes if f.accepts(fixed)]
    if not accepted:
        return {"ok": False, "why": f"the key accepts none of it ({fix['change']})"}
    if not fix["verified"]:
        return {"ok": False, "why": "hunt's re-run did not verify it"}
    try:
        iters = min(int(fixed.solver_number("max_iter")), 1000)
    except KeyError:
        iters = DEFAULT_ITERS
    again = plain(folder, files["solver"], iters, seed + 1000)
    if not again["finite"]:
        return {
            "ok": False,
            "why": f"plain pycaffe on another seed: {again.get('first') or again.get('fatal')}",
        }
    return {"ok": True, "why": accepted[0]}


def proof(case: Case, folder: str, twin_folder: str, seed: int) -> dict:
    """Plain Caffe on the fault (fails as FAILS says) and on the twin (finite)."""
    iters = 30
    fault = plain(folder, "solver.prototxt", iters)
    twin = plain(twin_folder, "solver.prototxt", iters)
    want = case.fails
    if want.startswith("abort:"):
        ok = fault["aborted"] and want[len("abort:") :].strip() in fault["fatal"]
    else:
        ok = fault["finite"] == (want == "finite") and not fault["aborted"]
    return {"fault": fault, "twin": twin, "ok": ok and twin["finite"]}


def run_case(case: Case, seed: int, root: str, prove: bool) -> dict:
    key = case.key(seed)
    folder = os.path.join(root, f"{case.name}-{seed}")
    fault = hunted(case, seed, os.path.join(folder, "fault"), clean=False)
    twin = hunted(case, seed, os.path.join(folder, "twin"), clean=True)
    row = {
        "case": case.name,
        "seed": seed,
        "healthy": key.healthy,
        "expected": list(key.causes),
        "cause": fault["cause"],
        "cause_ok": fault["cause"] in key.causes,
        "detected": fault["cause"] != "none",
        "layer": fault.get("layer"),
        "layer_ok": (fault.get("layer") in key.layers) if key.layers else None,
        "twin_cause": twin["cause"],
        "twin_ok": twin["cause"] == "none" and twin.get("return_code") == 0,
        "seconds": fault["seconds"],
        "twin_seconds": twin["seconds"],
    }
    if "error" in fault:
        row["error"] = fault["error"]
    if key.records is not None:
        found, wanted = set(fault.get("records", [])), set(key.records)
        row["records"] = sorted(found)
        row["records_expected"] = sorted(wanted)
        row["record_precision"] = len(found & wanted) / len(found) if found else 0.0
        row["record_recall"] = len(found & wanted) / len(wanted)
    fix = fix_holds(key, fault, os.path.join(folder, "fault"), seed)
    row["fix_ok"] = fix["ok"] if key.fixes else None
    row["fix_note"] = fix["why"]
    if prove:
        row["proof"] = proof(
            case, os.path.join(folder, "fault"), os.path.join(folder, "twin"), seed
        )
    return row


def ratio(rows, test, among=lambda r: True):
    chosen = [r for r in rows if among(r)]
    return (sum(1 for r in chosen if test(r)) / len(chosen)) if chosen else None, len(chosen)


def totals(rows) -> dict:
    faulty = lambda r: not r["healthy"]  # noqa: E731
    with_records = [r for r in rows if "record_recall" in r]
    return {
        "detection": ratio(rows, lambda r: r["detected"], faulty),
        "false_alarms": sum(1 for r in rows if not r["twin_ok"])
        + sum(1 for r in rows if r["healthy"] and r["detected"]),
        "cause": ratio(rows, lambda r: r["cause_ok"], faulty),
        "layer_top1": ratio(rows, lambda r: r["layer_ok"], lambda r: r["layer_ok"] is not None),
        "record_precision": ratio(with_records, lambda r: r["record_precision"] == 1.0),
        "record_recall": ratio(with_records, lambda r: r["record_recall"] == 1.0),
        "fix": ratio(rows, lambda r: r["fix_ok"], lambda r: r["fix_ok"] is not None),
        "slowest": max((max(r["seconds"], r["twin_seconds"]) for r in rows), default=0.0),
        "proved": ratio(rows, lambda r: r["proof"]["ok"], lambda r: "proof" in r),
    }


def row_line(r: dict) -> str:
    records = (
        f" records p={r['record_precision']:.2f} r={r['record_recall']:.2f}"
        if "record_recall" in r
        else ""
    )
    layer = (
        "" if r["layer_ok"] is None else f" layer {r['layer']}{'' if r['layer_ok'] else ' (WRONG)'}"
    )
    fix = (
        "" if r["fix_ok"] is None else f" fix {'ok' if r['fix_ok'] else 'MISSED'} ({r['fix_note']})"
    )
    proved = "" if "proof" not in r else f" proof {'ok' if r['proof']['ok'] else 'FAILED'}"
    cause = r["cause"] + ("" if r["cause_ok"] else f" (WRONG, key: {'/'.join(r['expected'])})")
    twin = "twin none" if r["twin_ok"] else f"twin {r['twin_cause']} (FALSE ALARM)"
    return (
        f"{r['case']:<28} seed {r['seed']}: {cause};{layer}{records};{fix} {twin}; "
        f"{r['seconds']:.1f}+{r['twin_seconds']:.1f} s{proved}"
    )


def report(sums: dict, targets: Targets) -> None:
    def pct(name):
        value, n = sums[name]
        return ("n/a" if value is None else f"{100 * value:.0f}%") + f" of {n}", value

    text, v = pct("detection")
    targets.check(f"detection           {text:>12} (target 100%)", v in (None, 1.0))
    targets.check(
        f"false alarms        {sums['false_alarms']:>12} (target 0)", sums["false_alarms"] == 0
    )
    text, v = pct("cause")
    targets.check(f"cause accuracy      {text:>12} (target >= 95%)", v is None or v >= 0.95)
    text, v = pct("layer_top1")
    targets.check(f"layer top-1         {text:>12} (target >= 90%)", v is None or v >= 0.9)
    for name in ("record_precision", "record_recall"):
        text, v = pct(name)
        targets.check(
            f"{name.replace('_', ' '):<19} {text:>12} exact (target: all)", v in (None, 1.0)
        )
    text, v = pct("fix")
    targets.check(f"fix rate            {text:>12} (target >= 85%)", v is None or v >= 0.85)
    slowest = sums["slowest"]
    targets.check(f"slowest hunt        {slowest:>10.1f} s (target <= 60 s)", slowest <= 60)
    if sums["proved"][1]:
        text, v = pct("proved")
        targets.check(f"proved on Caffe     {text:>12} (target 100%)", v == 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=1, help="seeds per case (1..N)")
    parser.add_argument("--only", nargs="+", default=[], metavar="NAME", help="these cases only")
    parser.add_argument("--json", action="store_true", help="the rows and totals as JSON on stdout")
    parser.add_argument(
        "--prove", action="store_true", help="also train fault and twin with plain pycaffe"
    )
    add_check_option(parser)
    args = parser.parse_args()
    os.environ.setdefault("GLOG_minloglevel", "2")
    try:
        chosen = cases(args.only)
    except ValueError as e:
        parser.error(str(e))
    targets = Targets()
    rows = []
    with tempfile.TemporaryDirectory(prefix="fault-bench-") as root:
        for case in chosen:
            for seed in range(1, args.seeds + 1):
                rows.append(run_case(case, seed, root, args.prove))
                if not args.json:
                    print(row_line(rows[-1]), flush=True)
    sums = totals(rows)
    if args.json:
        print(json.dumps({"cases": rows, "totals": sums}, indent=2, default=str))
        sys.stdout = sys.stderr  # the targets go beside the JSON, not into it
    else:
        print()
    report(sums, targets)
    targets.exit(args)


if __name__ == "__main__":
    main()
