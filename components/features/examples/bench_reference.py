"""Reference side of scripts/bench_features.sh: pyqlib's Alpha158 handler and TA-Lib's Python wrapper,
timed on a Qlib binary directory, plus the seeded synthetic-universe generator. Prints one JSON line.

  python bench_reference.py gen DIR --symbols 200 --days 2500 --seed 7
  python bench_reference.py qlib DIR --kernels 1
  python bench_reference.py talib DIR --repeat 3
"""

import argparse
import json
import os
import time

import numpy as np

FIELDS = ["open", "high", "low", "close", "volume", "vwap", "factor"]


def gen(args):
    """A Qlib bin dir of geometric random walks on a weekday calendar (float32, as dump_bin writes)."""
    rng = np.random.default_rng(args.seed)
    days = np.busday_offset("2010-01-04", np.arange(args.days), roll="forward")
    cal = [str(d) for d in days]
    os.makedirs(f"{args.dir}/calendars", exist_ok=True)
    os.makedirs(f"{args.dir}/instruments", exist_ok=True)
    with open(f"{args.dir}/calendars/day.txt", "w") as f:
        f.write("\n".join(cal) + "\n")
    lines = []
    for k in range(args.symbols):
        sym = f"SYN{k:04d}"
        n = args.days
        close = 20.0 * np.exp(np.cumsum(rng.normal(0.0003, 0.02, n)))
        open_ = close * np.exp(rng.normal(0.0, 0.01, n))
        high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, 0.01, n)))
        low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, 0.01, n)))
        volume = np.round(rng.lognormal(13.0, 0.5, n))
        vwap = (open_ + high + low + close) / 4.0
        cols = dict(open=open_, high=high, low=low, close=close, volume=volume, vwap=vwap, factor=np.ones(n))
        d = f"{args.dir}/features/{sym.lower()}"
        os.makedirs(d, exist_ok=True)
        for name in FIELDS:
            np.hstack([[0.0], cols[name]]).astype("<f4").tofile(f"{d}/{name}.day.bin")
        lines.append(f"{sym}\t{cal[0]}\t{cal[-1]}")
    with open(f"{args.dir}/instruments/all.txt", "w") as f:
        f.write("\n".join(lines) + "\n")
    print(json.dumps({"generated": args.dir, "symbols": args.symbols, "days": args.days, "seed": args.seed}))


def instruments(root):
    with open(f"{root}/instruments/all.txt") as f:
        return [line.split("\t") for line in f.read().splitlines() if line.strip()]


def qlib_alpha158(args):
    """Wall time of building pyqlib's Alpha158 handler (load + compute) and fetching its frame."""
    import qlib
    from qlib.contrib.data.handler import Alpha158

    qlib.init(provider_uri=args.dir, region="us", kernels=args.kernels, expression_cache=None, dataset_cache=None)
    ins = instruments(args.dir)
    start, end = min(i[1] for i in ins), max(i[2] for i in ins)
    t = time.perf_counter()
    h = Alpha158(
        instruments=[i[0] for i in ins],
        start_time=start,
        end_time=end,
        infer_processors=[],
        learn_processors=[],
    )
    df = h.fetch()
    secs = time.perf_counter() - t
    print(json.dumps({"engine": "pyqlib", "kernels": args.kernels, "rows": len(df), "columns": df.shape[1], "alpha158_s": secs}))


def load_bars(root, sym):
    """Reads a symbol's OHLCV from its .bin files as float64, the way the Rust side widens them."""
    out = {}
    for name in ["open", "high", "low", "close", "volume"]:
        raw = np.fromfile(f"{root}/features/{sym.lower()}/{name}.day.bin", dtype="<f4")
        out[name] = raw[1:].astype(np.float64)
    return out


def technical(b):
    """The 47 columns of stockops' `technical_set`, with the same parameters."""
    import talib

    o, h, l, c, v = b["open"], b["high"], b["low"], b["close"], b["volume"]
    cols = [talib.SMA(c, 20), talib.EMA(c, 12), talib.WMA(c, 20), talib.DEMA(c, 20), talib.TEMA(c, 20)]
    cols += [talib.TRIMA(c, 20), talib.KAMA(c, 30), talib.RSI(c, 14)]
    cols += list(talib.MACD(c, 12, 26, 9))
    cols += list(talib.BBANDS(c, 20, 2.0, 2.0))
    cols += [talib.ATR(h, l, c, 14), talib.NATR(h, l, c, 14), talib.TRANGE(h, l, c)]
    cols += [talib.ADX(h, l, c, 14), talib.ADXR(h, l, c, 14), talib.PLUS_DI(h, l, c, 14), talib.MINUS_DI(h, l, c, 14)]
    cols += [talib.CCI(h, l, c, 14), talib.MFI(h, l, c, v, 14), talib.WILLR(h, l, c, 14)]
    cols += [talib.OBV(c, v), talib.AD(h, l, c, v), talib.ADOSC(h, l, c, v, 3, 10)]
    cols += list(talib.STOCH(h, l, c, 5, 3, 0, 3, 0))
    cols += list(talib.STOCHF(h, l, c, 5, 3, 0))
    cols += [talib.ROC(c, 10), talib.MOM(c, 10), talib.TRIX(c, 30), talib.ULTOSC(h, l, c, 7, 14, 28)]
    cols += list(talib.AROON(h, l, 14))
    cols += [talib.AROONOSC(h, l, 14), talib.SAR(h, l, 0.02, 0.2), talib.STDDEV(c, 5, 1.0), talib.VAR(c, 5, 1.0)]
    cols += [talib.LINEARREG(c, 14), talib.LINEARREG_SLOPE(c, 14), talib.BOP(o, h, l, c), talib.CMO(c, 14)]
    cols += [talib.PPO(c, 12, 26, 0), talib.APO(c, 12, 26, 0)]
    return cols


def talib_indicators(args):
    """Best of `repeat` wall times of the 47 columns over every symbol, one thread (TA-Lib is C)."""
    bars = [load_bars(args.dir, i[0]) for i in instruments(args.dir)]
    best = float("inf")
    for _ in range(args.repeat):
        t = time.perf_counter()
        n = sum(len(technical(b)) for b in bars)
        best = min(best, time.perf_counter() - t)
    print(json.dumps({"engine": "talib", "symbols": len(bars), "columns": n, "indicators_s": best}))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("dir")
    g.add_argument("--symbols", type=int, default=200)
    g.add_argument("--days", type=int, default=2500)
    g.add_argument("--seed", type=int, default=7)
    q = sub.add_parser("qlib")
    q.add_argument("dir")
    q.add_argument("--kernels", type=int, default=1)
    t = sub.add_parser("talib")
    t.add_argument("dir")
    t.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    {"gen": gen, "qlib": qlib_alpha158, "talib": talib_indicators}[args.cmd](args)


if __name__ == "__main__":
    main()
