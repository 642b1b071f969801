"""Trains the baseline LightGBM model on the features stockops exported (`stockops features`), the way
stockops trains (components/train-batch/src/training_data.rs): rows sorted by (date, symbol), learn
segments drop rows without a label and z-score the label per date (CSZScoreNorm, sample std), NaN features
stay NaN. Saves the booster and the newest date's feature rows for the FastAPI app.

    python train_baseline.py FEATURES_CSV LABEL_CSV OUT_DIR TRAIN_FROM TRAIN_TO VALID_FROM VALID_TO SEED ROUNDS
"""

import json
import sys
import time

import lightgbm as lgb
import numpy as np
import pandas as pd


def learn_rows(df: pd.DataFrame, names: list[str], lo: str, hi: str) -> tuple[np.ndarray, np.ndarray]:
    seg = df[(df["date"] >= lo) & (df["date"] <= hi) & np.isfinite(df["LABEL0"])].copy()
    g = seg.groupby("date")["LABEL0"]
    seg["y"] = (seg["LABEL0"] - g.transform("mean")) / g.transform("std", ddof=1)
    seg = seg[np.isfinite(seg["y"])]
    return seg[names].to_numpy(dtype=np.float64), seg["y"].to_numpy(dtype=np.float64)


def main() -> None:
    feat_csv, label_csv, out_dir, tr_from, tr_to, va_from, va_to, seed, rounds = sys.argv[1:10]
    feats = pd.read_csv(feat_csv)
    names = [c for c in feats.columns if c not in ("symbol", "date")]
    labels = pd.read_csv(label_csv)
    df = feats.merge(labels, on=["symbol", "date"], how="left").sort_values(["date", "symbol"], kind="stable")
    x_tr, y_tr = learn_rows(df, names, tr_from, tr_to)
    x_va, y_va = learn_rows(df, names, va_from, va_to)
    params = {
        "objective": "regression",
        "learning_rate": 0.05,
        "num_leaves": 31,
        "seed": int(seed),
        "num_threads": 2,
        "deterministic": True,
        "verbose": -1,
    }
    t0 = time.perf_counter()
    train = lgb.Dataset(x_tr, y_tr, feature_name=names, free_raw_data=False)
    valid = lgb.Dataset(x_va, y_va, reference=train)
    booster = lgb.train(params, train, num_boost_round=int(rounds), valid_sets=[valid])
    secs = time.perf_counter() - t0
    booster.save_model(f"{out_dir}/model.txt")

    # The test segment (after valid), raw labels, as stockops reports it: mean daily IC and rank IC.
    test = df[(df["date"] > va_to) & np.isfinite(df["LABEL0"])].copy()
    test["pred"] = booster.predict(test[names].to_numpy(dtype=np.float64))
    daily = test.groupby("date")
    ic = daily.apply(lambda g: g["pred"].corr(g["LABEL0"]), include_groups=False).mean()
    rank_ic = daily.apply(lambda g: g["pred"].corr(g["LABEL0"], method="spearman"), include_groups=False).mean()

    latest = df["date"].max()
    now = df[df["date"] == latest].sort_values("symbol")
    np.savez(
        f"{out_dir}/latest.npz",
        symbols=now["symbol"].to_numpy(dtype=str),
        names=np.array(names),
        x=now[names].to_numpy(dtype=np.float64),
    )
    with open(f"{out_dir}/meta.json", "w") as f:
        json.dump({"date": latest, "rows_train": len(y_tr), "rows_valid": len(y_va), "train_s": secs}, f)
    print(
        f"baseline: LightGBM {lgb.__version__} trained {booster.num_trees()} trees on {len(y_tr)} rows "
        f"({len(names)} features) in {secs:.1f} s; test rows {len(test)}, IC {ic:.4f}, rank IC {rank_ic:.4f}; "
        f"{len(now)} rows kept for {latest}"
    )


if __name__ == "__main__":
    main()
