"""Tables for scripts/bench_predict.sh.

    report.py table DIR       wrk outputs DIR/wrk_{case}_{conns}_{side}.txt -> the throughput table
    report.py breakdown DIR   curl samples DIR/bd_{case}_{side}.txt -> medians of timing_us and client time
    report.py trainsummary F  `stockops train` output -> one line: rows and test metrics
    report.py compare A B     the stockops and baseline answers for the batch -> how closely the models agree
"""

import glob
import json
import os
import re
import statistics
import sys

CASES = [
    ("one", "one symbol"),
    ("explain", "one symbol + explain top 10"),
    ("batch", "300-symbol batch"),
]
UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def to_ms(text: str) -> float:
    n, u = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text).groups()
    return float(n) * UNITS[u]


def parse_wrk(path: str) -> dict:
    out = open(path).read()
    r = {"rps": float("nan"), "p50": float("nan"), "p99": float("nan"), "errors": "wrk failed", "sample": ""}
    m = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    if not m:
        r["errors"] = "wrk failed: " + out.strip().splitlines()[-1][:60] if out.strip() else "wrk failed"
        return r
    r["rps"] = float(m.group(1))
    r["requests"] = int(re.search(r"(\d+) requests in", out).group(1))
    for pct, key in (("50", "p50"), ("99", "p99")):
        m = re.search(rf"^\s*{pct}(?:\.000)?%\s+([0-9.]+(?:us|ms|s|m))\s*$", out, re.M)
        if m:
            r[key] = to_ms(m.group(1))
    errs = []
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        for name, v in zip(("connect", "read", "write", "timeout"), m.groups()):
            if int(v):
                errs.append(f"{name} {v}")
    statuses = {int(k): int(v) for k, v in re.findall(r"^STATUS (\d+) (\d+)$", out, re.M)}
    bad = {k: v for k, v in statuses.items() if not 200 <= k < 300}
    for k, v in sorted(bad.items()):
        errs.append(f"{k} x{v}")
    if not bad:
        m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        if m:
            errs.append(f"non-2xx {m.group(1)}")
    r["errors"] = ", ".join(errs) if errs else "0"
    r["sample"] = "\n".join(re.findall(r"^SAMPLE (.*)$", out, re.M))
    return r


def table(d: str) -> None:
    conns = sorted({int(os.path.basename(p).split("_")[2]) for p in glob.glob(f"{d}/wrk_*_*_*.txt")})
    head = (
        f"{'case':<28} {'conns':>5} | {'stockops req/s':>14} {'p50 ms':>9} {'p99 ms':>9} {'errors/timeouts':<32}"
        f" | {'baseline req/s':>14} {'p50 ms':>9} {'p99 ms':>9} {'errors':<10} | {'ratio':>6}"
    )
    print(head)
    print("-" * len(head))
    samples = []
    for case, label in CASES:
        for c in conns:
            s_path, b_path = f"{d}/wrk_{case}_{c}_stockops.txt", f"{d}/wrk_{case}_{c}_baseline.txt"
            if not (os.path.exists(s_path) and os.path.exists(b_path)):
                continue
            s, b = parse_wrk(s_path), parse_wrk(b_path)
            log_path = s_path.replace(".txt", ".hostlog")
            if os.path.exists(log_path):
                logged, drain = (open(log_path).read().split() + ["0", "0"])[:2]
                notes = [f"log +{logged}"] if int(logged) else []
                if float(drain) >= 0.5:
                    notes.append(f"drain {float(drain):.1f}s")
                if notes:
                    s["errors"] += " (" + ", ".join(notes) + ")"
            ratio = s["rps"] / b["rps"] if b["rps"] else float("nan")
            print(
                f"{label:<28} {c:>5} | {s['rps']:>14.1f} {s['p50']:>9.2f} {s['p99']:>9.2f} {s['errors']:<32}"
                f" | {b['rps']:>14.1f} {b['p50']:>9.2f} {b['p99']:>9.2f} {b['errors']:<10} | {ratio:>6.3f}"
            )
            for side, r in (("stockops", s), ("baseline", b)):
                if r["sample"]:
                    samples.append(f"  {side} {label} c={c}: {r['sample']}")
    print("log +N: lines the host logged during and right after the run; drain: seconds the server stayed busy "
          "after wrk stopped (requests whose client had gone), waited out before the next run")
    if samples:
        print("first non-2xx answer per wrk thread:")
        print("\n".join(samples))


def read_samples(path: str) -> list[tuple[dict | None, float]]:
    lines = open(path).read().splitlines()
    out = []
    for body, t in zip(lines[0::2], lines[1::2]):
        try:
            j = json.loads(body)
        except ValueError:
            j = None
        out.append((j, float(t) * 1000.0))
    return out


def breakdown(d: str) -> None:
    fields = ["model_load", "features", "scoring", "explain", "log"]
    head = (
        f"{'case':<28} {'n':>3} | " + " ".join(f"{f:>10}" for f in fields) + f" {'sum':>8} | "
        f"{'client ms':>9} {'outside':>8} | {'baseline client ms':>18}"
    )
    print("in-component timing_us, median of sequential requests (client ms: curl time_total; "
          "outside: client time minus the in-component sum = host, instantiation, routing, HTTP)")
    print(head)
    print("-" * len(head))
    for case, label in CASES:
        sp, bp = f"{d}/bd_{case}_stockops.txt", f"{d}/bd_{case}_baseline.txt"
        if not os.path.exists(sp):
            continue
        s = read_samples(sp)
        b = read_samples(bp) if os.path.exists(bp) else []
        timed = [j["timing_us"] for j, _ in s if j and "timing_us" in j]
        med = {f: statistics.median(t.get(f, 0) for t in timed) if timed else float("nan") for f in fields}
        total_us = statistics.median(sum(t.get(f, 0) for f in fields) for t in timed) if timed else float("nan")
        client = statistics.median(t for _, t in s)
        bclient = statistics.median(t for _, t in b) if b else float("nan")
        bad = len(s) - len(timed)
        log_path = sp.replace(".txt", ".hostlog")
        logged = int(open(log_path).read().strip() or 0) if os.path.exists(log_path) else 0
        print(
            f"{label:<28} {len(s):>3} | " + " ".join(f"{med[f]:>10.0f}" for f in fields) + f" {total_us:>8.0f} | "
            f"{client:>9.2f} {client - total_us / 1000:>8.2f} | {bclient:>18.2f}" + (f"  ({bad} without timing_us)" if bad else "")
            + (f"  (host log +{logged} lines)" if logged else "")
        )


def train_summary(path: str) -> None:
    """One line from `stockops train`'s output: rows per segment and the test metrics."""
    text = open(path).read()
    found = None
    for start in (i for i, ch in enumerate(text) if ch == "{"):
        try:
            found, _ = json.JSONDecoder().raw_decode(text[start:])
            break
        except ValueError:
            continue

    def find(v):
        if isinstance(v, dict):
            if "metrics" in v and isinstance(v["metrics"], dict) and "test" in v["metrics"]:
                return v["metrics"]
            for x in v.values():
                r = find(x)
                if r:
                    return r
        return None

    m = find(found)
    if not m:
        print("(no metrics in the output: " + " | ".join(text.strip().splitlines()[-3:]) + ")")
        return
    t = m["test"]
    print(
        f"{m.get('rounds')} rounds, rows train {m['train']['rows']} valid {m['valid']['rows']} test {t['rows']}; "
        f"test IC {t['ic']:.4f}, rank IC {t['rank_ic']:.4f}"
    )


def compare(a: str, b: str) -> None:
    s = {p["symbol"]: p["score"] for p in json.load(open(a))["predictions"]}
    bl = {p["symbol"]: p["score"] for p in json.load(open(b))["predictions"]}
    common = sorted(set(s) & set(bl))
    xs, ys = [s[k] for k in common], [bl[k] for k in common]

    def ranks(v):
        order = sorted(range(len(v)), key=lambda i: v[i])
        r = [0.0] * len(v)
        for pos, i in enumerate(order):
            r[i] = float(pos)
        return r

    pearson = statistics.correlation(xs, ys) if len(common) > 2 else float("nan")
    spearman = statistics.correlation(ranks(xs), ranks(ys)) if len(common) > 2 else float("nan")
    diff = max(abs(x - y) for x, y in zip(xs, ys)) if common else float("nan")
    spread = statistics.pstdev(ys) if common else float("nan")
    print(
        f"model agreement on the newest date: {len(common)} symbols in both answers "
        f"(stockops {len(s)}, baseline {len(bl)}); Pearson {pearson:.4f}, Spearman {spearman:.4f}, "
        f"max |score difference| {diff:.3g} (baseline score std {spread:.3g})"
    )


if __name__ == "__main__":
    {"table": lambda: table(sys.argv[2]), "breakdown": lambda: breakdown(sys.argv[2]),
     "compare": lambda: compare(sys.argv[2], sys.argv[3]),
     "trainsummary": lambda: train_summary(sys.argv[2])}[sys.argv[1]]()
