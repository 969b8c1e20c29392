"""Slow, obvious numpy implementations of every streamwise learner.

These are test oracles, not API: each update is written the way the paper
writes it, with dense vectors and matrices and no tricks, so that the C
core can be checked against them row by row. Symbols follow the papers
(see the header of csrc/learn/sw_linear.c for the equations).
"""
from statistics import NormalDist

import numpy as np


class LinearReference:
    """PA (task "classification" or "regression", variant pa/pa1/pa2) and
    SCW (variant scw1/scw2, covariance diag/full) on dense rows.

    Class numbers are 0..n_classes-1; binary models (n_classes <= 2) keep
    one vector with y = +1 for class 1 and -1 for class 0.
    """

    def __init__(self, n_features, n_classes=2, algorithm="pa",
                 task="classification", variant="pa1", C=1.0, epsilon=0.1,
                 eta=0.9, a=1.0, covariance="diag", fit_intercept=True):
        self.algorithm, self.task, self.variant = algorithm, task, variant
        self.C, self.epsilon, self.eta, self.a = C, epsilon, eta, a
        self.full = covariance == "full"
        self.intercept = fit_intercept
        self.d = n_features + (1 if fit_intercept else 0)
        self.n_features = n_features
        self.n_classes = n_classes if task == "classification" else 0
        k = self.n_classes if self.n_classes > 2 else 1
        self.W = np.zeros((k, self.d))
        if algorithm == "scw":
            self.phi = NormalDist().inv_cdf(eta)
            if self.full:
                self.S = np.stack([a * np.eye(self.d) for _ in range(k)])
            else:
                self.S = np.full((k, self.d), float(a))

    def _x(self, x):
        x = np.asarray(x, dtype=np.float64)
        return np.append(x, 1.0) if self.intercept else x

    def scores(self, x):
        return self.W @ self._x(x)

    def predict(self, x):
        s = self.scores(x)
        if self.task == "regression":
            return s[0]
        if len(s) == 1:
            return 1 if self.n_classes >= 2 and s[0] > 0 else 0
        return int(np.argmax(s))

    # ---- PA -----------------------------------------------------------

    def _tau(self, loss, sq):
        if self.variant == "pa":
            return loss / sq
        if self.variant == "pa1":
            return min(self.C, loss / sq)
        return loss / (sq + 1.0 / (2.0 * self.C))

    def _learn_pa(self, x, y):
        s = self.W @ x
        sq = x @ x
        if sq == 0:
            return
        if self.task == "regression":
            err = y - s[0]
            loss = max(0.0, abs(err) - self.epsilon)
            if loss > 0:
                self.W[0] += np.sign(err) * self._tau(loss, sq) * x
            return
        if self.W.shape[0] == 1:
            yy = 1.0 if y == 1 else -1.0
            loss = max(0.0, 1.0 - yy * s[0])
            if loss > 0:
                self.W[0] += self._tau(loss, sq) * yy * x
            return
        r = self._rival(s, y)
        loss = max(0.0, 1.0 - (s[y] - s[r]))
        if loss > 0:
            tau = self._tau(loss, 2.0 * sq)
            self.W[y] += tau * x
            self.W[r] -= tau * x

    @staticmethod
    def _rival(s, y):
        masked = np.where(np.arange(len(s)) == y, -np.inf, s)
        return int(np.argmax(masked))

    # ---- SCW ----------------------------------------------------------

    def _alpha_beta(self, m, v):
        phi = self.phi
        psi, zeta = 1 + phi ** 2 / 2, 1 + phi ** 2
        if self.variant == "scw1":
            alpha = (-m * psi + np.sqrt(m * m * phi ** 4 / 4
                                        + v * phi ** 2 * zeta)) / (v * zeta)
            alpha = min(self.C, max(0.0, alpha))
        else:
            n = v + 1 / (2 * self.C)
            gamma = phi * np.sqrt(phi ** 2 * m ** 2 * v ** 2
                                  + 4 * n * v * (n + v * phi ** 2))
            alpha = max(0.0, (-(2 * m * n + phi ** 2 * m * v) + gamma)
                        / (2 * (n ** 2 + n * v * phi ** 2)))
        u = (-alpha * v * phi
             + np.sqrt(alpha ** 2 * v ** 2 * phi ** 2 + 4 * v)) ** 2 / 4
        beta = alpha * phi / (np.sqrt(u) + v * alpha * phi)
        return alpha, beta

    def _sigma_x(self, k, x):
        return self.S[k] @ x if self.full else self.S[k] * x

    def _shrink(self, k, g, beta):
        if self.full:
            self.S[k] -= beta * np.outer(g, g)
        else:
            self.S[k] -= beta * g * g

    def _learn_scw(self, x, y):
        s = self.W @ x
        if self.W.shape[0] == 1:
            yy = 1.0 if y == 1 else -1.0
            g = self._sigma_x(0, x)
            v, m = x @ g, yy * s[0]
            if v <= 0 or self.phi * np.sqrt(v) - m <= 0:
                return
            alpha, beta = self._alpha_beta(m, v)
            if alpha <= 0:
                return
            self.W[0] += alpha * yy * g
            self._shrink(0, g, beta)
            return
        r = self._rival(s, y)
        gy, gr = self._sigma_x(y, x), self._sigma_x(r, x)
        v, m = x @ gy + x @ gr, s[y] - s[r]
        if v <= 0 or self.phi * np.sqrt(v) - m <= 0:
            return
        alpha, beta = self._alpha_beta(m, v)
        if alpha <= 0:
            return
        self.W[y] += alpha * gy
        self.W[r] -= alpha * gr
        self._shrink(y, gy, beta)
        self._shrink(r, gr, beta)

    def learn(self, x, y):
        x = self._x(x)
        if self.algorithm == "pa":
            self._learn_pa(x, y)
        else:
            self._learn_scw(x, y)

    def prequential(self, X, y):
        """Predictions made before each row is learned."""
        out = []
        for xi, yi in zip(X, y):
            out.append(self.predict(xi))
            self.learn(xi, yi)
        return np.array(out, dtype=np.float64)


# ---------------------------------------------------------------------------
# ALS
# ---------------------------------------------------------------------------

def als_confidence(v, alpha, convention):
    """c = alpha r ("linear", the implicit library) or 1 + alpha r ("hu")."""
    return alpha * v if convention == "linear" else 1.0 + alpha * v


def als_solve_exact(R, Y, reg, alpha=1.0, convention="linear",
                    reg_scaling="none", explicit=False):
    """Every row of R (scipy CSR over Y's rows) solved exactly in float64:
    implicit (Y'Y + Y'(C-I)Y + lambda I) x = Y'C p, or explicit
    (Y_u'Y_u + lambda I) x = Y_u' r. Empty rows give zeros."""
    Y = Y.astype(np.float64)
    k = Y.shape[1]
    YtY = Y.T @ Y
    out = np.zeros((R.shape[0], k))
    for u in range(R.shape[0]):
        lo, hi = R.indptr[u], R.indptr[u + 1]
        cols, vals = R.indices[lo:hi], R.data[lo:hi].astype(np.float64)
        if explicit:
            keep = np.ones(len(vals), dtype=bool)
        else:
            keep = vals != 0
        cols, vals = cols[keep], vals[keep]
        if len(cols) == 0:
            continue
        lam = reg * len(R.indices[lo:hi]) if reg_scaling == "n_u" else reg
        Yu = Y[cols]
        if explicit:
            A = Yu.T @ Yu + lam * np.eye(k)
            b = Yu.T @ vals
        else:
            c = als_confidence(vals, alpha, convention)
            A = YtY + (Yu.T * (c - 1)) @ Yu + lam * np.eye(k)
            b = Yu.T @ c
        out[u] = np.linalg.solve(A, b)
    return out


def als_solve_cg(R, X, Y, reg, alpha=1.0, convention="linear",
                 reg_scaling="none", steps=3):
    """The implicit library's CG recurrence, row by row, in float32,
    warm-started from X (which is not modified)."""
    X = X.astype(np.float32).copy()
    Y = Y.astype(np.float32)
    YtY = (Y.astype(np.float64).T @ Y.astype(np.float64)).astype(np.float32)
    for u in range(R.shape[0]):
        lo, hi = R.indptr[u], R.indptr[u + 1]
        if hi == lo:
            X[u] = 0
            continue
        cols, vals = R.indices[lo:hi], R.data[lo:hi]
        keep = vals != 0
        cols, vals = cols[keep], vals[keep].astype(np.float64)
        lam = np.float32(reg * (hi - lo) if reg_scaling == "n_u" else reg)
        c = als_confidence(vals, alpha, convention).astype(np.float32)
        Yu = Y[cols]
        x = X[u]
        r = -(YtY @ x + lam * x)
        r += (c - (c - 1) * (Yu @ x)) @ Yu
        p = r.copy()
        rsold = r @ r
        if rsold < 1e-20:
            continue
        for _ in range(steps):
            Ap = YtY @ p + lam * p + ((c - 1) * (Yu @ p)) @ Yu
            a = rsold / (p @ Ap)
            x = x + a * p
            r = r - a * Ap
            rsnew = r @ r
            if rsnew < 1e-20:
                break
            p = r + (rsnew / rsold) * p
            rsold = rsnew
        X[u] = x
    return X


def als_implicit_loss(R, X, Y, reg, alpha=1.0, convention="linear",
                      reg_scaling="none"):
    """The weighted loss over every (user, item) pair, densely:
    sum_obs c (1 - x.y)^2 + sum_unobs (x.y)^2 + penalties, divided by
    (sum c + n_users n_items - nnz), as the implicit library reports it."""
    X = X.astype(np.float64)
    Y = Y.astype(np.float64)
    P = X @ Y.T
    coo = R.tocoo()
    keep = coo.data != 0
    rows, cols, vals = coo.row[keep], coo.col[keep], coo.data[keep]
    c = als_confidence(vals.astype(np.float64), alpha, convention)
    observed = np.zeros(P.shape, dtype=bool)
    observed[rows, cols] = True
    loss = np.sum(P[~observed] ** 2) + np.sum(c * (1 - P[rows, cols]) ** 2)
    n_u = np.diff(R.indptr)
    n_i = np.bincount(R.indices, minlength=Y.shape[0])
    if reg_scaling == "n_u":
        pen = reg * (np.sum(n_u * np.sum(X ** 2, 1)) +
                     np.sum(n_i * np.sum(Y ** 2, 1)))
    else:
        pen = reg * (np.sum(X ** 2) + np.sum(Y ** 2))
    return (loss + pen) / (c.sum() + P.size - R.nnz)


def ranking_metrics(recommended, test, n_items, K):
    """implicit's precision/MAP/NDCG/AUC at K from recommended item lists
    (one per user, already excluding training items) and a test CSR."""
    cg = 1.0 / np.log2(np.arange(2, K + 2))
    cg_sum = np.cumsum(cg)
    relevant = pr_div = mean_ap = ndcg = mean_auc = total = 0.0
    for u in range(test.shape[0]):
        likes = set(test.indices[test.indptr[u]:test.indptr[u + 1]].tolist())
        if not likes:
            continue
        pr_div += min(K, len(likes))
        ap = hit = miss = auc = 0.0
        idcg = cg_sum[min(K, len(likes)) - 1]
        n_pos, n_neg = len(likes), n_items - len(likes)
        for i in range(K):
            if recommended[u][i] in likes:
                relevant += 1
                hit += 1
                ap += hit / (i + 1)
                ndcg += cg[i] / idcg
            else:
                miss += 1
                auc += hit
        auc += ((hit + n_pos) / 2.0) * (n_neg - miss)
        mean_ap += ap / min(K, len(likes))
        mean_auc += auc / (n_pos * n_neg)
        total += 1
    return {"precision": relevant / pr_div, "map": mean_ap / total,
            "ndcg": ndcg / total, "auc": mean_auc / total}


# ---------------------------------------------------------------------------
# Feature pipelines
# ---------------------------------------------------------------------------

def _duration(v):
    if isinstance(v, int):
        return v
    units = {"us": 1, "ms": 1_000, "s": 1_000_000, "m": 60_000_000,
             "h": 3_600_000_000, "d": 86_400_000_000}
    for u in ("us", "ms", "s", "m", "h", "d"):
        if v.endswith(u) and v[:-len(u)].replace(".", "").isdigit():
            return int(float(v[:-len(u)]) * units[u])
    raise ValueError(v)


def feature_columns(f):
    """The dense column names of a feature, as the C core names them."""
    if f["op"] == "one_hot" or (f["op"] == "histogram" and "values" in f):
        return [f"{f['name']}={v}" if isinstance(v, str)
                else f"{f['name']}={v:g}" for v in f["values"]]
    if f["op"] == "histogram":
        e = f["edges"]
        return ([f"{f['name']}<{e[0]:g}"] +
                [f"{f['name']}[{e[i - 1]:g},{e[i]:g})"
                 for i in range(1, len(e))] +
                [f"{f['name']}>={e[-1]:g}"])
    return [f["name"]]


def pipeline_reference(spec, events, partitions=None, pairs=None):
    """Feature rows of a stream of events (a list of dicts in arrival
    order), one event at a time in plain Python, with the semantics of
    streamwise.Pipeline: invalid and late events are set aside; the others
    are processed in (event time, arrival) order, each row reading the state
    of its keys before the event updates it. Returns (rows, late, invalid):
    rows is a list of (arrival, time, {column: value}) in output order.
    distinct is counted exactly here: the core agrees up to 15 values per
    key and estimates beyond. partitions: each event's source partition
    (all 0 by default); the watermark follows the slowest partition, and
    one not seen yet counts as at the first event's time. pairs: a list
    that receives the label join's pairs, in emission order, as
    (prediction arrival, its time, {column: value}, label, outcome
    arrival or -1)."""
    import bisect
    import math
    ev = spec["events"]
    tname, unit = ev["time"], ev.get("time_unit", "us")
    scale = {"us": 1, "ms": 1_000, "s": 1_000_000}[unit]
    fields = dict(ev["fields"])
    fields.setdefault(tname, "int64")
    wm = spec.get("watermark", {})
    delay = _duration(wm.get("out_of_orderness", 0)) + \
        _duration(wm.get("allowed_lateness", 0))
    ttl = _duration(spec["ttl"]) if "ttl" in spec else 0
    idle = _duration(wm.get("idle_timeout", 0))
    late, invalid, kept = [], [], []
    newest, mark, first = None, None, None
    part_max = {k: None for k in range(wm.get("partitions", 0))}
    for seq, e in enumerate(events):
        bad = None
        for name, kind in fields.items():
            v = e.get(name)
            if v is None:
                bad = "missing"
                break
            if kind == "str":
                if not isinstance(v, str):
                    bad = "wrong_type"
                    break
            elif isinstance(v, str):
                bad = "wrong_type"
                break
            elif not math.isfinite(float(v)):
                bad = "bad_time" if name == tname else "nan"
                break
        if bad is None:
            t = int(e[tname] * scale)
            if t < 0:
                bad = "bad_time"
        if bad is not None:
            invalid.append((seq, bad))
            continue
        if mark is not None and t < mark:
            late.append(seq)
            continue
        part = partitions[seq] if partitions is not None else 0
        first = t if first is None else first
        newest = t if newest is None else max(newest, t)
        for k in range(part + 1):
            part_max.setdefault(k, None)    # lower numbers exist too
        part_max[part] = t if part_max[part] is None \
            else max(part_max[part], t)
        times = [first if m is None else m for m in part_max.values()]
        low = min(m for m in times if not idle or m >= newest - idle) - delay
        mark = low if mark is None else max(mark, low)
        kept.append((t, seq, e))
    if spec.get("emission", "watermark") != "arrival":
        kept.sort(key=lambda r: (r[0], r[1]))

    order = list(fields)
    state = {}     # (feature name, key) -> dict
    seen = {}      # key -> last event time

    def key_of(f, e):
        if "key" not in f:
            keys = []
        else:
            keys = f["key"] if isinstance(f["key"], list) else [f["key"]]
        keys = sorted(keys, key=order.index)
        return (tuple(keys), tuple(e[k] for k in keys))

    def fresh(f):
        st = {"n": 0, "s": 0.0, "mean": 0.0, "m2": 0.0, "min": math.inf,
              "max": -math.inf, "last": None, "tl": None, "succ": 0.0,
              "w": None, "sess": None, "set": set()}
        if f["op"] == "histogram":
            st["bins"] = [0.0] * len(feature_columns(f))
        if f["op"] == "daily_profile":
            st["ring"] = [[-1, 0.0] for _ in range(f.get("days", 7))]
        if "hopping" in f.get("window", {}):
            b = _duration(f["window"]["hopping"]) // \
                _duration(f["window"]["every"])
            st["ring"] = [[-1, 0.0, 0.0, []] for _ in range(b)]
        return st

    def bin_of(f, x, raw):
        if "values" in f:
            return f["values"].index(raw) if raw in f["values"] else -1
        return bisect.bisect_right(f["edges"], x)

    stateless = ("log1p", "bucketize", "one_hot", "value")
    rows = []
    lj = spec.get("label_join")
    queue, waiting = [], {}     # [t, seq, key, row, alive]; key -> entry
    if lj:
        within = _duration(lj["within"])
        negatives = lj.get("unmatched", "negative") == "negative"

    def unclaimed(ent):
        ent[4] = False
        if negatives and pairs is not None:
            pairs.append((ent[1], ent[0], ent[3], 0.0, -1))

    def join_step(t, seq, e, out):
        while queue and (not queue[0][4] or queue[0][0] < t - within):
            ent = queue.pop(0)
            if ent[4]:
                del waiting[ent[2]]
                unclaimed(ent)
        key, kind = e[lj["key"]], e[lj["type"]]
        if kind == lj["outcome"]:
            ent = waiting.pop(key, None)
            if ent is not None:
                ent[4] = False
                label = float(e[lj["label"]]) if "label" in lj else 1.0
                if pairs is not None:
                    pairs.append((ent[1], ent[0], ent[3], label, seq))
        elif kind == lj["prediction"]:
            if key in waiting:
                unclaimed(waiting.pop(key))
            ent = [t, seq, key, dict(out), True]
            queue.append(ent)
            waiting[key] = ent
    for t, seq, e in kept:
        out = {}
        stale = set()
        for f in spec["features"]:
            if f["op"] not in ("hash",) + stateless:
                tk = key_of(f, e)
                if ttl and seen.get(tk) is not None and t - seen[tk] > ttl:
                    stale.add(tk)
        for f in spec["features"]:
            op = f["op"]
            raw = e.get(f["field"]) if "field" in f else None
            x = float(raw) if raw is not None and not isinstance(raw, str) \
                else 1.0
            cols = feature_columns(f)
            if op == "hash":
                continue
            if op == "log1p":
                out[cols[0]] = math.log1p(x) if x > -1 else math.nan
                continue
            if op == "bucketize":
                out[cols[0]] = float(bisect.bisect_right(f["edges"], x))
                continue
            if op == "one_hot":
                for c, v in zip(cols, f["values"]):
                    out[c] = 1.0 if raw == v else 0.0
                continue
            if op == "value":
                out[cols[0]] = x
                continue
            tk = key_of(f, e)
            st = state.get((f["name"], tk))
            if st is None or tk in stale:
                st = state[(f["name"], tk)] = fresh(f)
            win = f.get("window", {})
            if "hopping" in win:
                every = _duration(win["every"])
                bi = t // every
                c = sm = 0.0
                vals = []
                for b in st["ring"]:
                    if bi - len(st["ring"]) < b[0] <= bi:
                        c += b[1]
                        sm += b[2]
                        vals += b[3]
                if op == "var":
                    mu = sum(vals) / len(vals) if vals else 0.0
                    out[cols[0]] = sum((v - mu) ** 2 for v in vals) / \
                        (len(vals) - 1) if len(vals) > 1 else math.nan
                elif op in ("min", "max"):
                    out[cols[0]] = (min if op == "min" else max)(vals) \
                        if vals else math.nan
                else:
                    out[cols[0]] = {"count": c, "sum": sm}.get(
                        op, sm / c if c > 0 else math.nan)
                slot = st["ring"][bi % len(st["ring"])]
                if slot[0] != bi:
                    slot[:] = [bi, 0.0, 0.0, []]
                slot[1] += 1.0
                slot[2] += x
                slot[3].append(x)
                continue
            if "tumbling" in win:
                wi = t // _duration(win["tumbling"])
                if st["w"] != wi:
                    st.update({k: v for k, v in fresh(f).items()
                               if k != "w"})
                    st["w"] = wi
            if "session" in win:
                if st["sess"] is not None and \
                        t - st["sess"] > _duration(win["session"]):
                    st.update(fresh(f))
            decay = 1.0
            if op in ("decayed_sum", "decayed_count") and st["tl"] is not None:
                decay = math.exp2(-(t - st["tl"]) / _duration(f["half_life"]))
            if op == "count":
                out[cols[0]] = float(st["n"])
            elif op == "sum":
                out[cols[0]] = st["s"]
            elif op == "mean":
                out[cols[0]] = st["mean"] if st["n"] else math.nan
            elif op == "var":
                out[cols[0]] = st["m2"] / (st["n"] - 1) if st["n"] > 1 \
                    else math.nan
            elif op == "min":
                out[cols[0]] = st["min"] if st["n"] else math.nan
            elif op == "max":
                out[cols[0]] = st["max"] if st["n"] else math.nan
            elif op == "last":
                out[cols[0]] = st["last"] if st["last"] is not None \
                    else math.nan
            elif op in ("decayed_sum", "decayed_count"):
                out[cols[0]] = st["s"] * decay
            elif op == "time_since_last":
                out[cols[0]] = (t - st["tl"]) / 1e6 \
                    if st["tl"] is not None else math.nan
            elif op == "rate":
                a, b = f.get("a", 1.0), f.get("b", 1.0)
                out[cols[0]] = (st["succ"] + a) / (st["n"] + a + b)
            elif op == "distinct":
                out[cols[0]] = float(len(st["set"]))
            elif op == "histogram":
                for c, v in zip(cols, st["bins"]):
                    out[c] = v / st["n"] if st["n"] else math.nan
            elif op == "daily_profile":
                day = t // 86_400_000_000
                ring = st["ring"]
                out[cols[0]] = sum(
                    math.pow(f.get("decay", 1.0), day - d) * v
                    for d, v in ring if day - len(ring) < d <= day)
            elif op == "standardize":
                out[cols[0]] = (x - st["mean"]) / math.sqrt(
                    st["m2"] / (st["n"] - 1)) \
                    if st["n"] > 1 and st["m2"] > 0 else math.nan
            # update
            st["n"] += 1
            if op == "sum":
                st["s"] += x
            if op in ("mean", "var", "standardize"):
                d = x - st["mean"]
                st["mean"] += d / st["n"]
                st["m2"] += d * (x - st["mean"])
            if op == "min":
                st["min"] = min(st["min"], x)
            if op == "max":
                st["max"] = max(st["max"], x)
            if op == "last":
                st["last"] = x
            if op == "decayed_sum":
                st["s"] = st["s"] * decay + x
                st["tl"] = t
            if op == "decayed_count":
                st["s"] = st["s"] * decay + 1.0
                st["tl"] = t
            if op == "time_since_last":
                st["tl"] = t
            if op == "rate":
                st["succ"] += x
            if op == "distinct":
                st["set"].add(raw)
            if op == "histogram":
                j = bin_of(f, x, raw)
                if j >= 0:
                    st["bins"][j] += 1.0
            if op == "daily_profile":
                day = t // 86_400_000_000
                slot = st["ring"][day % len(st["ring"])]
                if slot[0] != day:
                    slot[:] = [day, 0.0]
                slot[1] += x
            if "session" in win:
                st["sess"] = t
        for f in spec["features"]:
            if f["op"] not in ("hash",) + stateless:
                seen[key_of(f, e)] = t
            if "default" in f:
                for c in feature_columns(f):
                    if math.isnan(out[c]):
                        out[c] = float(f["default"])
        rows.append((seq, t, out))
        if lj:
            join_step(t, seq, e, out)
    if lj:
        for ent in queue:
            if ent[4]:
                unclaimed(ent)
    return rows, late, invalid
