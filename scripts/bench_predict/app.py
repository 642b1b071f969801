"""The baseline server: FastAPI + LightGBM with the newest date's feature rows precomputed in memory (its
most favourable case: no feature computation, no store reads, no prediction log).

    BENCH_PREDICT_DIR=<dir with model.txt, latest.npz, meta.json> uvicorn app:app --workers 2

GET  /predict/{symbol}                       one row, booster.predict
GET  /predict/{symbol}?explain=true&top=10   plus pred_contrib=True, the top contributions by |value|
POST /predict_batch  {"date": ...}           every symbol on the newest date, ranked
"""

import json
import os

import lightgbm as lgb
import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import Response

DIR = os.environ["BENCH_PREDICT_DIR"]
BOOSTER = lgb.Booster(model_file=os.path.join(DIR, "model.txt"))
_npz = np.load(os.path.join(DIR, "latest.npz"))
SYMBOLS = [str(s) for s in _npz["symbols"]]
NAMES = [str(n) for n in _npz["names"]]
X = np.ascontiguousarray(_npz["x"])
ROWS = {s: X[i : i + 1].copy() for i, s in enumerate(SYMBOLS)}
with open(os.path.join(DIR, "meta.json")) as f:
    DATE = json.load(f)["date"]
PARAMS = {"num_threads": 1}

app = FastAPI()


def _json(obj, status: int = 200) -> Response:
    return Response(json.dumps(obj).encode(), status_code=status, media_type="application/json")


@app.get("/predict/{symbol}")
async def predict_one(symbol: str, explain: bool = False, top: int = 10) -> Response:
    row = ROWS.get(symbol)
    if row is None:
        return _json({"error": f"unknown symbol {symbol}"}, 404)
    score = float(BOOSTER.predict(row, **PARAMS)[0])
    out = {"symbol": symbol, "date": DATE, "score": score}
    if explain:
        contrib = BOOSTER.predict(row, pred_contrib=True, **PARAMS)[0]
        values = contrib[:-1]
        idx = np.argsort(-np.abs(values), kind="stable")[:top]
        out["explanation"] = {
            "expected_value": float(contrib[-1]),
            "top": [{"name": NAMES[j], "value": float(row[0, j]), "contribution": float(values[j])} for j in idx],
        }
    return _json({"predictions": [out]})


@app.post("/predict_batch")
async def predict_batch(request: Request) -> Response:
    body = await request.body()
    req = json.loads(body) if body else {}
    if req.get("date", DATE) != DATE:
        return _json({"error": f"only {DATE} is precomputed"}, 422)
    scores = BOOSTER.predict(X, **PARAMS)
    order = np.argsort(-scores, kind="stable")
    n = len(order)
    preds = [
        {"symbol": SYMBOLS[i], "date": DATE, "score": float(scores[i]), "rank": r + 1, "percentile": (n - r) / n}
        for r, i in enumerate(order)
    ]
    return _json({"date": DATE, "predictions": preds})
