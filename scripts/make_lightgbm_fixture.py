"""LightGBM parity fixture for components/train-batch/tests/gbdt.rs.

Writes a small data set (NaN, zeros, ties and a near-constant feature included) and the predictions of the
model LightGBM 4.7.0 trains on it with every random draw switched on (feature_fraction, bagging, a bin
sample smaller than the data) and a seed. The test trains stockops with the same parameters and expects the
same predictions. Run with scripts/make_lightgbm_fixture.sh (sets up the venv).
"""
import json
import sys

import lightgbm as lgb
import numpy as np

out = sys.argv[1]
rng = np.random.RandomState(20261127)
n_train, n_test, n_feat = 3000, 400, 8
n = n_train + n_test
x = rng.normal(size=(n, n_feat)).round(6)
x[:, 5] = rng.randint(0, 4, size=n) * 0.5            # few distinct values, a quarter zeros
x[rng.rand(n) < 0.1, 6] = np.nan                      # missing values
x[:, 7] = np.where(rng.rand(n) < 0.995, 0.0, 1.0)     # nearly constant: LightGBM's pre-filter drops it
y = (np.sin(2 * x[:, 0]) + x[:, 1] * x[:, 2] + 0.5 * x[:, 5] + np.nan_to_num(x[:, 6]) ** 2
     + 0.3 * rng.normal(size=n)).round(6)

params = {
    "objective": "regression", "learning_rate": 0.1, "num_leaves": 15, "max_depth": 6,
    "lambda_l1": 1.0, "lambda_l2": 5.0, "min_data_in_leaf": 20, "feature_fraction": 0.7,
    "bagging_fraction": 0.8, "bagging_freq": 2, "bin_construct_sample_cnt": 1000, "seed": 42,
    "num_boost_round": 60,
}
lgb_params = {k: v for k, v in params.items() if k != "num_boost_round"}
lgb_params.update(verbosity=-1, num_threads=1)
booster = lgb.train(lgb_params, lgb.Dataset(x[:n_train], y[:n_train]), num_boost_round=params["num_boost_round"])
pred = booster.predict(x[n_train:])

def cell(v):
    return "" if np.isnan(v) else repr(float(v))

with open(f"{out}/lightgbm_parity.csv", "w") as f:
    f.write(",".join(["split"] + [f"x{i}" for i in range(n_feat)] + ["label"]) + "\n")
    for i in range(n):
        f.write(",".join(["train" if i < n_train else "test"] + [cell(v) for v in x[i]] + [cell(y[i])]) + "\n")
with open(f"{out}/lightgbm_parity.json", "w") as f:
    json.dump({"lightgbm": lgb.__version__, "params": params, "num_trees": booster.num_trees(),
               "predictions": [float(p) for p in pred]}, f, indent=0)
    f.write("\n")
print(f"{booster.num_trees()} trees, {n_train} training rows, {n_test} predictions")
