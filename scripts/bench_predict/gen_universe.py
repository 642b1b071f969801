"""A deterministic synthetic universe for the predict benchmark: N symbols x D trading days of OHLCV bars,
derived from the four real series of the us4 sample (tests/fixtures/reference/us4_ohlcv.csv).

Each synthetic symbol takes a random window of D consecutive bars of one real series, shuffles it in
20-day blocks, scales its daily log returns (clipped to +-20 %, which removes the unadjusted splits) by a
random factor, adds a small random drift, and rebuilds a close path from a random start price. Open, high,
low and vwap keep each bar's own ratios to its close, volume is scaled. The dates are the newest D dates of
the real calendar, so the newest bar is the sample's newest date.

    python gen_universe.py SRC_CSV OUT_CSV [symbols=300] [days=400] [seed=20240601]
"""

import sys

import numpy as np
import pandas as pd


def main() -> None:
    src, out = sys.argv[1], sys.argv[2]
    n_symbols = int(sys.argv[3]) if len(sys.argv) > 3 else 300
    n_days = int(sys.argv[4]) if len(sys.argv) > 4 else 400
    seed = int(sys.argv[5]) if len(sys.argv) > 5 else 20240601
    rng = np.random.default_rng(seed)

    bars = pd.read_csv(src).sort_values(["symbol", "date"])
    series = {s: g.reset_index(drop=True) for s, g in bars.groupby("symbol")}
    calendar = sorted(set.intersection(*(set(g["date"]) for g in series.values())))[-n_days:]
    names = sorted(series)
    block = 20

    frames = []
    for k in range(n_symbols):
        base = series[names[rng.integers(len(names))]]
        start = int(rng.integers(1, len(base) - n_days))
        win = base.iloc[start : start + n_days].reset_index(drop=True)
        prev_close = base["close"].to_numpy()[start - 1 : start + n_days - 1]
        close = win["close"].to_numpy()
        log_ret = np.clip(np.log(close / prev_close), -0.2, 0.2)
        ratios = {c: (win[c] / win["close"]).to_numpy() for c in ("open", "high", "low", "vwap")}
        volume = win["volume"].to_numpy(dtype=float)

        # Shuffle in blocks: each day keeps its return, intraday shape and volume together.
        blocks = [np.arange(i, min(i + block, n_days)) for i in range(0, n_days, block)]
        order = np.concatenate([blocks[i] for i in rng.permutation(len(blocks))])
        log_ret, volume = log_ret[order], volume[order]
        ratios = {c: r[order] for c, r in ratios.items()}

        scale = rng.uniform(0.5, 1.5)
        drift = rng.normal(0.0, 3e-4)
        p0 = rng.uniform(10.0, 300.0)
        new_close = p0 * np.exp(np.cumsum(log_ret * scale + drift))
        df = pd.DataFrame(
            {
                "symbol": f"SYN{k:03d}",
                "date": calendar,
                "open": new_close * ratios["open"],
                "high": new_close * ratios["high"],
                "low": new_close * ratios["low"],
                "close": new_close,
                "volume": np.maximum(1, np.round(volume * rng.uniform(0.2, 5.0))).astype(np.int64),
                "vwap": new_close * ratios["vwap"],
            }
        )
        for c in ("open", "high", "low", "close", "vwap"):
            df[c] = df[c].round(4)
        df["high"] = df[["open", "high", "low", "close", "vwap"]].max(axis=1)
        df["low"] = df[["open", "high", "low", "close", "vwap"]].min(axis=1)
        frames.append(df)

    universe = pd.concat(frames, ignore_index=True)
    universe.to_csv(out, index=False)
    print(f"{n_symbols} symbols x {n_days} days ({calendar[0]} to {calendar[-1]}): {len(universe)} bars -> {out}")


if __name__ == "__main__":
    main()
