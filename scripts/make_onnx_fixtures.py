"""Writes small ONNX regression models trained by other libraries, with inputs and onnxruntime's
outputs, for predict's tests (tract and the pre-planned form must score them as onnxruntime does).

Each fixture NAME is NAME.onnx plus NAME.json:
    {"model": "NAME.onnx", "num_features": F, "rows": [[x, ...], ...] (null = NaN),
     "onnxruntime": [y, ...], "native": [y, ...] (optional: the producing library's own scores)}

Models exported by our own Rust code (stockops_*.onnx with stockops_*.input.json holding rows
and the native booster's scores) are scored here too, so onnxruntime checks our exporter.
Run through scripts/make_onnx_fixtures.sh (pinned versions).
"""

import json
import math
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, TensorProto

F = 8  # features
SEED = 20240611


def data(rows, rng, nan_fraction):
    x = rng.uniform(-2.0, 2.0, size=(rows, F))
    y = np.sin(3.0 * x[:, 0]) + x[:, 1] * x[:, 2] + np.where(x[:, 3] > 0.3, 1.5, -0.5) + 0.1 * rng.normal(size=rows)
    if nan_fraction > 0:
        mask = rng.uniform(size=x.shape) < nan_fraction
        mask[:, [0, 2, 5, 6, 7]] = False
        y = np.where(mask[:, 1], y + 2.0, y)  # missing feature 1 shifts the label: NaN routing matters
        x[mask] = np.nan
    return x.astype(np.float32), y


def probe_rows(rng, nan_fraction):
    """Held-out rows, plus rows sitting exactly on split values (where < and <= differ)."""
    x, _ = data(48, rng, nan_fraction)
    return x


def on_thresholds(model_bytes, rows):
    """Copies of some rows with features set exactly to the model's thresholds."""
    m = onnx.load_from_string(model_bytes)
    values, feats = [], []
    for node in m.graph.node:
        for a in node.attribute:
            if a.name == "nodes_values":
                values = list(a.floats)
            if a.name == "nodes_featureids":
                feats = list(a.ints)
    extra = []
    for i, (f, v) in enumerate(zip(feats, values)):
        if i % 7 == 0 and f < F:
            r = rows[i % len(rows)].copy()
            r[f] = np.float32(v)
            extra.append(r)
        if len(extra) >= 16:
            break
    return np.concatenate([rows, np.array(extra, dtype=np.float32).reshape(-1, F)]) if extra else rows


def run_ort(model_bytes, rows):
    sess = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    out = sess.run(None, {name: rows.astype(np.float32)})
    # Regressors have one output [N, 1]; take the first float output.
    y = next(o for o in out if np.asarray(o).dtype == np.float32)
    return np.asarray(y, dtype=np.float32).reshape(len(rows), -1)[:, 0]


def jfloat(v):
    v = float(v)
    return None if math.isnan(v) else v


def write(out_dir, name, model_bytes, rows, native=None):
    onnx.checker.check_model(onnx.load_from_string(model_bytes))
    with open(os.path.join(out_dir, name + ".onnx"), "wb") as f:
        f.write(model_bytes)
    doc = {
        "model": name + ".onnx",
        "num_features": int(rows.shape[1]),
        "rows": [[jfloat(v) for v in r] for r in rows],
        "onnxruntime": [jfloat(v) for v in run_ort(model_bytes, rows)],
    }
    if native is not None:
        doc["native"] = [jfloat(v) for v in native]
    with open(os.path.join(out_dir, name + ".json"), "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print(f"{name}: {len(model_bytes)} bytes, {len(rows)} rows")


def lightgbm_fixture(out_dir, rng):
    import lightgbm as lgb
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    x, y = data(500, rng, 0.1)
    model = lgb.LGBMRegressor(n_estimators=20, num_leaves=8, learning_rate=0.2, min_child_samples=5, verbose=-1)
    model.fit(x, y)
    onx = convert_lightgbm(model, initial_types=[("features", FloatTensorType([None, F]))], target_opset=13)
    b = onx.SerializeToString()
    rows = on_thresholds(b, probe_rows(rng, 0.1))
    write(out_dir, "lightgbm_regressor", b, rows, model.predict(rows))


def xgboost_fixture(out_dir, rng):
    import xgboost as xgb
    from onnxmltools import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    x, y = data(500, rng, 0.1)
    model = xgb.XGBRegressor(n_estimators=20, max_depth=3, learning_rate=0.2, base_score=0.5, n_jobs=1)
    model.fit(x, y)
    onx = convert_xgboost(model, initial_types=[("features", FloatTensorType([None, F]))], target_opset=13)
    b = onx.SerializeToString()
    rows = on_thresholds(b, probe_rows(rng, 0.1))
    write(out_dir, "xgboost_regressor", b, rows, model.predict(rows))


def sklearn_fixtures(out_dir, rng):
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
    from sklearn.linear_model import LinearRegression
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    types = [("features", FloatTensorType([None, F]))]
    opset = {"": 13, "ai.onnx.ml": 3}
    x, y = data(500, rng, 0.0)
    for name, model in [
        ("sklearn_gbr", GradientBoostingRegressor(n_estimators=20, max_depth=3, random_state=0)),
        ("sklearn_random_forest", RandomForestRegressor(n_estimators=5, max_depth=4, random_state=0)),
        ("sklearn_linear", LinearRegression()),
    ]:
        model.fit(x, y)
        b = convert_sklearn(model, initial_types=types, target_opset=opset).SerializeToString()
        rows = probe_rows(rng, 0.0)
        if name != "sklearn_linear":
            rows = on_thresholds(b, rows)
        write(out_dir, name, b, rows, model.predict(rows.astype(np.float64)))


def handmade_fixtures(out_dir, rng):
    """Every branch mode, NaN tracking both ways, and each aggregate: what converters rarely emit."""
    # Tree 0: LT f0 0.5 -> (GTE f1 -1 -> (leaf, leaf), leaf); tree 1: GT f2 0 -> (EQ f3 1 -> leaves), NEQ f4 2;
    # tree 2: LEQ f5 0.25 (NaN false) -> leaves; tree 3: a single leaf.
    nodes = [
        # tree, id, mode, feature, value, true, false, nan_true
        (0, 0, "BRANCH_LT", 0, 0.5, 1, 2, 1),
        (0, 1, "BRANCH_GTE", 1, -1.0, 3, 4, 0),
        (0, 2, "LEAF", 0, 0.0, 0, 0, 0),
        (0, 3, "LEAF", 0, 0.0, 0, 0, 0),
        (0, 4, "LEAF", 0, 0.0, 0, 0, 0),
        (1, 0, "BRANCH_GT", 2, 0.0, 1, 2, 0),
        (1, 1, "BRANCH_EQ", 3, 1.0, 3, 4, 1),
        (1, 2, "BRANCH_NEQ", 4, 2.0, 5, 6, 0),
        (1, 3, "LEAF", 0, 0.0, 0, 0, 0),
        (1, 4, "LEAF", 0, 0.0, 0, 0, 0),
        (1, 5, "LEAF", 0, 0.0, 0, 0, 0),
        (1, 6, "LEAF", 0, 0.0, 0, 0, 0),
        (2, 0, "BRANCH_LEQ", 5, 0.25, 1, 2, 0),
        (2, 1, "LEAF", 0, 0.0, 0, 0, 0),
        (2, 2, "LEAF", 0, 0.0, 0, 0, 0),
        (3, 0, "LEAF", 0, 0.0, 0, 0, 0),
    ]
    leaves = [(t, i) for (t, i, m, *_rest) in nodes if m == "LEAF"]
    weights = [round(float(w), 3) for w in rng.uniform(-3.0, 3.0, size=len(leaves))]
    specials = np.array([0.5, -1.0, 0.0, 1.0, 2.0, 0.25, np.nan], dtype=np.float32)
    rows = rng.choice(specials, size=(96, F)).astype(np.float32)
    rows[:32] = rng.uniform(-2, 2, size=(32, F)).astype(np.float32)
    for agg in ["SUM", "AVERAGE", "MIN", "MAX"]:
        node = helper.make_node(
            "TreeEnsembleRegressor",
            ["features"],
            ["variable"],
            domain="ai.onnx.ml",
            n_targets=1,
            aggregate_function=agg,
            base_values=[0.75],
            post_transform="NONE",
            nodes_treeids=[n[0] for n in nodes],
            nodes_nodeids=[n[1] for n in nodes],
            nodes_modes=[n[2] for n in nodes],
            nodes_featureids=[n[3] for n in nodes],
            nodes_values=[n[4] for n in nodes],
            nodes_truenodeids=[n[5] for n in nodes],
            nodes_falsenodeids=[n[6] for n in nodes],
            nodes_missing_value_tracks_true=[n[7] for n in nodes],
            target_ids=[0] * len(leaves),
            target_treeids=[t for t, _ in leaves],
            target_nodeids=[i for _, i in leaves],
            target_weights=weights,
        )
        graph = helper.make_graph(
            [node],
            "handmade",
            [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", F])],
            [helper.make_tensor_value_info("variable", TensorProto.FLOAT, ["N", 1])],
        )
        model = helper.make_model(
            graph,
            producer_name="make_onnx_fixtures",
            opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("ai.onnx.ml", 3)],
        )
        model.ir_version = 8
        write(out_dir, "handmade_" + agg.lower(), model.SerializeToString(), rows)


def stockops_fixtures(out_dir):
    for fname in sorted(os.listdir(out_dir)):
        if fname.startswith("stockops_") and fname.endswith(".input.json"):
            name = fname[: -len(".input.json")]
            with open(os.path.join(out_dir, fname)) as f:
                inp = json.load(f)
            rows = np.array([[np.nan if v is None else v for v in r] for r in inp["rows"]], dtype=np.float32)
            with open(os.path.join(out_dir, name + ".onnx"), "rb") as f:
                b = f.read()
            write(out_dir, name, b, rows, inp.get("native"))


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "components/predict/tests/fixtures/onnx"
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(SEED)
    lightgbm_fixture(out_dir, rng)
    xgboost_fixture(out_dir, rng)
    sklearn_fixtures(out_dir, rng)
    handmade_fixtures(out_dir, rng)
    stockops_fixtures(out_dir)


if __name__ == "__main__":
    main()
