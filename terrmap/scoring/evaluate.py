"""Validation of a lead-scoring model on held-out leads, and the report tables the Model page shows.

ROC AUC, PR AUC (average precision), Brier score, log loss, the calibration curve over
:data:`ECE_BINS` equal-count bins (scikit-learn's quantile bins) and the expected calibration error
(ECE: the count-weighted mean |observed win rate - mean predicted| over those bins), gains and lift
by decile, permutation importance (scikit-learn's: mean drop of ROC AUC over
:data:`PERMUTATION_REPEATS` seeded shuffles of each input column), and the simplest baseline: the
imported CRM score when at least half the test leads have one, else the win rate of the lead's
industry on the training split (smoothed towards the overall rate with a weight of
:data:`BASELINE_SMOOTHING` leads).

scikit-learn is imported inside the functions that use it: it takes ~0.8 s to import, and every
import and page loads :mod:`terrmap.scoring` (for the fallback scores) without training anything.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from terrmap.scoring.features import feature_label

ECE_BINS = 10
PERMUTATION_REPEATS = 3
PERMUTATION_MAX_ROWS = 20_000
BASELINE_SMOOTHING = 20.0


def calibration_curve(y, p, bins: int = ECE_BINS) -> list[dict]:
    """Per equal-count bin of ``p``: bin number, leads, mean predicted and observed win rate."""
    from sklearn.calibration import calibration_curve as sk_calibration_curve  # why: slow import (module note)

    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    if not len(p):
        return []
    observed, predicted = sk_calibration_curve(y, p, n_bins=bins, strategy="quantile", pos_label=1)
    # scikit-learn returns no counts: the same quantile edges and bin assignment give them.
    edges = np.percentile(p, np.linspace(0, 100, bins + 1))
    counts = np.bincount(np.searchsorted(edges[1:-1], p), minlength=bins)
    counts = counts[counts > 0]
    return [{"bin": i, "n": int(n), "predicted": float(pr), "observed": float(ob)}
            for i, (n, pr, ob) in enumerate(zip(counts, predicted, observed), start=1)]


def expected_calibration_error(y, p, bins: int = ECE_BINS) -> float:
    """Count-weighted mean |observed rate - mean predicted| over ``bins`` equal-count bins of ``p``."""
    curve = calibration_curve(y, p, bins)
    n = sum(b["n"] for b in curve)
    return float(sum(b["n"] * abs(b["observed"] - b["predicted"]) for b in curve) / max(n, 1))


def gains_by_decile(y, p) -> list[dict]:
    """Leads sorted by score, best first, cut into 10 equal groups: wins, win rate, lift and cumulative gains."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    order = np.argsort(-p, kind="stable")
    total_wins = max(y.sum(), 1e-12)
    base = y.mean() if len(y) else 0.0
    out, cum_n, cum_w = [], 0, 0.0
    for d, part in enumerate(np.array_split(order, 10), start=1):
        if not len(part):
            continue
        wins = float(y[part].sum())
        cum_n += len(part)
        cum_w += wins
        rate = wins / len(part)
        out.append({
            "decile": d, "n": int(len(part)), "wins": int(wins), "win_rate": rate,
            "avg_score": float(p[part].mean()), "lift": rate / base if base else 0.0,
            "cum_leads_share": cum_n / len(y), "cum_wins_share": cum_w / total_wins,
            "cum_lift": (cum_w / total_wins) / (cum_n / len(y)),
        })
    return out


def roc_auc(y, p) -> float:
    """ROC AUC, NaN when ``y`` has a single outcome."""
    from sklearn.metrics import roc_auc_score  # why: slow import (module note)

    y = np.asarray(y)
    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")


def pr_auc(y, p) -> float:
    from sklearn.metrics import average_precision_score  # why: slow import (module note)

    y = np.asarray(y)
    return float(average_precision_score(y, p)) if 0 < y.sum() < len(y) else float("nan")


def classification_metrics(y, p) -> dict:
    from sklearn.metrics import brier_score_loss, log_loss  # why: slow import (module note)

    y = np.asarray(y, dtype=int)
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    both = 0 < y.sum() < len(y)
    return {
        "roc_auc": roc_auc(y, p),
        "pr_auc": pr_auc(y, p),
        "ece": expected_calibration_error(y, p),
        "brier": float(brier_score_loss(y, p)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])) if both else float("nan"),
        "n": int(len(y)),
        "positives": int(y.sum()),
    }


def permutation_importance(booster, Z: np.ndarray, y: np.ndarray, columns: list[str], seed: int) -> list[dict]:
    """Mean (and std) drop of ROC AUC when one column of the encoded matrix ``Z`` is shuffled, over
    :data:`PERMUTATION_REPEATS` seeded shuffles of at most :data:`PERMUTATION_MAX_ROWS` rows; largest first.
    ``columns`` names the matrix's columns."""
    from sklearn.inspection import permutation_importance as sk_permutation_importance  # why: slow import

    result = sk_permutation_importance(
        booster, Z, y, scoring="roc_auc", n_repeats=PERMUTATION_REPEATS, random_state=seed,
        max_samples=min(len(Z), PERMUTATION_MAX_ROWS),
    )
    out = [{"feature": col, "label": feature_label(col), "importance": float(mean), "std": float(std)}
           for col, mean, std in zip(columns, result.importances_mean, result.importances_std)]
    return sorted(out, key=lambda r: -r["importance"])


def _missing_key(values: pd.Series) -> pd.Series:
    return values.astype(object).where(values.notna(), "\0missing")


def single_column_auc(x: pd.Series, y: np.ndarray, categorical: bool) -> float:
    """How well one column alone separates won from lost (0.5 = not at all, 1 = perfectly)."""
    if categorical:
        score = pd.Series(y, index=x.index).groupby(_missing_key(x)).transform("mean").to_numpy()
    else:
        v = pd.to_numeric(x, errors="coerce").to_numpy(dtype=float)
        if np.isnan(v).all():
            return 0.5
        score = np.where(np.isnan(v), np.nanmin(v) - 1, v)
    auc = roc_auc(y, score)
    return 0.5 if math.isnan(auc) else max(auc, 1 - auc)


def baseline(train: pd.DataFrame, y_train: np.ndarray, test: pd.DataFrame,
             y_test: np.ndarray) -> tuple[dict, np.ndarray]:
    """The simplest baseline's metrics and its mask of test rows it scores."""
    crm = pd.to_numeric(test["crm_score"], errors="coerce")
    has = crm.notna().to_numpy()
    if has.sum() >= 0.5 * len(test) and 0 < y_test[has].sum() < has.sum():
        m = classification_metrics(y_test[has], crm.to_numpy()[has])
        m["name"] = "crm_score"
        m["label"] = "Imported CRM score"
        m["gains"] = gains_by_decile(y_test[has], crm.to_numpy()[has])
        return m, has
    overall = float(y_train.mean())
    if "industry" in train:
        g = pd.Series(y_train, index=train.index).groupby(_missing_key(train["industry"])).agg(["sum", "count"])
        rate = (g["sum"] + BASELINE_SMOOTHING * overall) / (g["count"] + BASELINE_SMOOTHING)
        p = _missing_key(test["industry"]).map(rate).astype(float).fillna(overall).to_numpy()
    else:
        p = np.full(len(test), overall)
    m = classification_metrics(y_test, p)
    m["name"] = "industry_win_rate"
    m["label"] = "Win rate of the lead's industry"
    m["gains"] = gains_by_decile(y_test, p)
    return m, np.ones(len(test), dtype=bool)


def jsonable(obj):
    """``obj`` with numpy scalars as Python ones and NaN/inf as None (JSON-clean)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return None if math.isnan(v) or math.isinf(v) else v
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


# -- report tables (from a model's stored metrics) ---------------------------------------------

_COMPARED = [("roc_auc", "ROC AUC (higher is better)"), ("pr_auc", "PR AUC (higher is better)"),
             ("ece", "Calibration error, ECE (lower is better)"), ("brier", "Brier score (lower is better)"),
             ("log_loss", "Log loss (lower is better)")]


def comparison_table(metrics: dict) -> pd.DataFrame:
    """Metric, Model, <baseline label>: the model beside its baseline, on the leads the baseline scores."""
    base = metrics["baseline"]
    model = base.get("model_on_same_leads") or metrics
    return pd.DataFrame({
        "Metric": [label for _, label in _COMPARED],
        "Model": [model[key] for key, _ in _COMPARED],
        base["label"]: [base[key] for key, _ in _COMPARED],
    })


def gains_curves(metrics: dict) -> pd.DataFrame:
    """who (Model, the baseline's label, Random), leads, wins: cumulative share of wins by share of leads worked."""
    base = metrics["baseline"]
    rows = [{"who": "Model", "leads": 0.0, "wins": 0.0}, {"who": base["label"], "leads": 0.0, "wins": 0.0}]
    rows += [{"who": "Model", "leads": g["cum_leads_share"], "wins": g["cum_wins_share"]} for g in metrics["gains"]]
    rows += [{"who": base["label"], "leads": g["cum_leads_share"], "wins": g["cum_wins_share"]}
             for g in base.get("gains", [])]
    rows += [{"who": "Random", "leads": 0.0, "wins": 0.0}, {"who": "Random", "leads": 1.0, "wins": 1.0}]
    return pd.DataFrame(rows)


def features_table(metrics: dict) -> pd.DataFrame:
    """Feature (label), Kind of every feature the model uses."""
    return pd.DataFrame({"Feature": [feature_label(f) for f in metrics["features"]],
                         "Kind": [metrics["feature_kinds"][f] for f in metrics["features"]]})


def excluded_table(metrics: dict) -> pd.DataFrame:
    """Column (label), Why: the columns that are not features."""
    return pd.DataFrame({"Column": [feature_label(k) for k in metrics["excluded"]],
                         "Why": list(metrics["excluded"].values())}, dtype=object)
