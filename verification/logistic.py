"""Logistic regression for every verifier: the sigmoid, scikit-learn's L2 fit, and a bounded
(sign-constrained) fit by L-BFGS-B that scikit-learn cannot do.

Two sigmoid formulas are kept on purpose: they differ in the last bit of about half of all
inputs, and the calibrator's and stacker's saved figures were computed with ``sigmoid_exp``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import minimize
from sklearn.linear_model import LogisticRegression


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-z) as 0.5 (1 + tanh(z / 2)): never overflows."""
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64))))


def sigmoid_exp(z: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-z) computed literally (e^-z may overflow to inf, giving exactly 0)."""
    with np.errstate(over="ignore"):
        return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)


def fit_logistic(
    x: np.ndarray, y: np.ndarray, *, c: float, max_iter: int, balanced: bool
) -> tuple[np.ndarray, float]:
    """scikit-learn's L2 logistic regression (lbfgs): (weights, intercept).

    ``c`` is the inverse penalty strength; ``balanced`` weighs the classes inversely to their
    frequency."""
    model = LogisticRegression(
        C=c, max_iter=max_iter, class_weight="balanced" if balanced else None, solver="lbfgs"
    )
    model.fit(x, y)
    return np.asarray(model.coef_[0]), float(model.intercept_[0])


def fit_bounded_logistic(
    x: np.ndarray,
    y: np.ndarray,
    *,
    bounds: Sequence[tuple[float | None, float | None]],
    l2: float,
    n_penalized: int,
) -> np.ndarray:
    """Bounded L2 logistic regression; theta = [one weight per column of ``x``..., intercept].

    Only the first ``n_penalized`` entries are penalized (the intercept is free, as in
    scikit-learn); ``bounds`` has one (low, high) per entry of theta."""
    xb = np.hstack([x, np.ones((len(x), 1))])
    penalty = np.zeros(xb.shape[1])
    penalty[:n_penalized] = l2

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = xb @ theta
        # log(1 + e^z) - y z, stably
        nll = float(np.sum(np.logaddexp(0.0, z) - y * z))
        grad = xb.T @ (sigmoid(z) - y)
        return nll + 0.5 * float(penalty @ theta**2), grad + penalty * theta

    result = minimize(
        loss,
        np.zeros(xb.shape[1]),
        jac=True,
        method="L-BFGS-B",
        bounds=list(bounds),
        options={"maxiter": 2000},
    )
    if not result.success:
        raise RuntimeError(f"confidence fit did not converge: {result.message}")
    return np.asarray(result.x, dtype=np.float64)
