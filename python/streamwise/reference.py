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
