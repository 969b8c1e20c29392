"""Streaming features on the TalkingData click log, fed to an online
learner: prequential AUC of app-download prediction.

    PYTHONPATH=python /usr/bin/python3 experiments/talkingdata_features.py [DATA]

The 100,000 clicks are replayed in click_time order (stable on file order).
Each download (is_attributed = 1) is replayed as its own event at its
attributed_time, so an app's or channel's attribution rate at any moment
counts only the downloads that had happened by then: a click's own label,
and labels still in the future, never reach its features. Features per
click: counts per ip, ip+app, ip+device+os, app, channel; clicks per ip
decayed with a 1-hour half-life; time since the ip's last click; downloads
and clicks per app and per channel (turned into Beta(1, 100)-smoothed
attribution rates); hashed app x channel and os x device crosses.
An SCW-I learner (defaults) reads the click rows in order in batches of
1,000: each batch is scored before it is learned (prequential), and the AUC
of those scores is reported for the streaming features alone, the hashed
ids and crosses alone, and both.
"""
import sys
import time

import numpy as np

sys.path.insert(0, __file__.rsplit("/experiments/", 1)[0] + "/python")

import streamwise as sw  # noqa: E402
from streamwise import datasets  # noqa: E402

SPEC = {
    "events": {"time": "ts", "time_unit": "s",
               "fields": {"ip": "int64", "app": "int64", "device": "int64",
                          "os": "int64", "channel": "int64", "click": "int8",
                          "download": "int8"}},
    "features": [
        {"name": "ip_n", "op": "sum", "key": "ip", "field": "click"},
        {"name": "ip_app_n", "op": "sum", "key": ["ip", "app"],
         "field": "click"},
        {"name": "ip_dev_os_n", "op": "sum", "key": ["ip", "device", "os"],
         "field": "click"},
        {"name": "app_n", "op": "sum", "key": "app", "field": "click"},
        {"name": "channel_n", "op": "sum", "key": "channel", "field": "click"},
        {"name": "ip_clicks_1h", "op": "decayed_sum", "key": "ip",
         "field": "click", "half_life": "1h"},
        {"name": "ip_since_last", "op": "time_since_last", "key": "ip"},
        {"name": "app_downloads", "op": "sum", "key": "app",
         "field": "download"},
        {"name": "channel_downloads", "op": "sum", "key": "channel",
         "field": "download"},
        {"name": "app_x_channel", "op": "hash", "fields": ["app", "channel"],
         "dims": 1 << 16},
        {"name": "os_x_device", "op": "hash", "fields": ["os", "device"],
         "dims": 1 << 14},
        {"name": "app_id", "op": "hash", "fields": ["app"], "dims": 1 << 12},
        {"name": "channel_id", "op": "hash", "fields": ["channel"],
         "dims": 1 << 12},
    ],
    "watermark": {"out_of_orderness": "0s"},
}


def load_events(data=None):
    """Clicks and their downloads as one event stream, in time order."""
    import pandas as pd
    path = datasets.data_dir(data) + \
        "/talkingdata-adtracking-sample/train_sample.csv.gz"
    df = pd.read_csv(path)
    df = df.sort_values("click_time", kind="stable").reset_index(drop=True)
    ids = ["ip", "app", "device", "os", "channel"]
    clicks = df[ids].copy()
    clicks["ts"] = pd.to_datetime(df["click_time"]).astype("int64") // 10**9
    clicks["click"] = np.int8(1)
    clicks["download"] = np.int8(0)
    clicks["label"] = df["is_attributed"].astype(np.int8)
    clicks["row"] = np.arange(len(df))
    got = df[df["is_attributed"] == 1]
    dl = got[ids].copy()
    dl["ts"] = pd.to_datetime(got["attributed_time"]).astype("int64") // 10**9
    dl["click"] = np.int8(0)
    dl["download"] = np.int8(1)
    dl["label"] = np.int8(-1)
    dl["row"] = -1
    ev = pd.concat([clicks, dl], ignore_index=True)
    # a download replayed at the same second as a click comes after it
    ev = ev.sort_values(["ts", "download"], kind="stable")
    return ev.reset_index(drop=True)


def design(out, rows):
    """Learner input from pipeline rows: log1p counts, smoothed rates, the
    hashed sparse block."""
    import scipy.sparse as sp
    cols = {c: out.dense[rows, i] for i, c in enumerate(out.columns)}
    dense = np.column_stack([
        np.log1p(cols["ip_n"]), np.log1p(cols["ip_app_n"]),
        np.log1p(cols["ip_dev_os_n"]), np.log1p(cols["app_n"]) / 5,
        np.log1p(cols["channel_n"]) / 5, np.log1p(cols["ip_clicks_1h"]),
        np.log1p(np.nan_to_num(cols["ip_since_last"], nan=1e6)) / 5,
        20 * (cols["app_downloads"] + 1) / (cols["app_n"] + 101),
        20 * (cols["channel_downloads"] + 1) / (cols["channel_n"] + 101)])
    return sp.hstack([sp.csr_matrix(dense), out.sparse[rows]]).tocsr()


def prequential_auc(X, y, batch=1000):
    from sklearn.metrics import roc_auc_score
    model = sw.SCWClassifier()
    scores = np.empty(len(y))
    model.partial_fit(X[:batch], y[:batch], classes=[0, 1])
    scores[:batch] = 0.0
    for lo in range(batch, len(y), batch):
        scores[lo:lo + batch] = model.decision_function(X[lo:lo + batch])
        model.partial_fit(X[lo:lo + batch], y[lo:lo + batch])
    return roc_auc_score(y[batch:], scores[batch:])


class Concat:
    """Rows of several pipeline outputs as one."""

    def __init__(self, outs):
        import scipy.sparse as sp
        self.columns = outs[0].columns
        self.dense = np.concatenate([o.dense for o in outs])
        self.sparse = sp.vstack([o.sparse for o in outs]).tocsr()
        self.index = np.concatenate([o.index for o in outs])


def main():
    ev = load_events(sys.argv[1] if len(sys.argv) > 1 else None)
    p = sw.Pipeline(SPEC)
    t0 = time.perf_counter()
    outs = [p.push(ev.iloc[lo:lo + 10_000]) for lo in range(0, len(ev),
                                                              10_000)]
    outs.append(p.flush())
    elapsed = time.perf_counter() - t0
    out = Concat([o for o in outs if len(o)])
    order = out.index                      # arrival numbers = rows of ev
    is_click = ev["click"].to_numpy()[order] == 1
    rows = np.flatnonzero(is_click)
    y = ev["label"].to_numpy()[order][rows]
    print(f"{len(ev):,} events ({int(is_click.sum()):,} clicks, "
          f"{len(ev) - int(is_click.sum()):,} downloads) in {elapsed:.2f} s; "
          f"{p.stats['keys']:,} keys; {int(y.sum())} attributed clicks\n")
    frame = out.dense[rows]
    busiest = np.argmax(frame[:, out.columns.index("ip_n")])
    print("the features of the busiest ip's last click:")
    for c, v in zip(out.columns, frame[busiest]):
        print(f"  {c:18s} {v:12.4g}")
    X = design(out, rows)
    dense = X[:, :9].tocsr()
    ids = out.sparse[rows].tocsr()
    print("\nprequential AUC, SCW-I, batches of 1,000:")
    for name, M in (("streaming features alone", dense),
                    ("hashed ids and crosses alone", ids),
                    ("both", X)):
        print(f"  {name:30s} {prequential_auc(M, y):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
