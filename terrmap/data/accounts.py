"""Account ownership as stored: the SQL that resolves who owns each lead, and the pin/overlay rows.

The rules (pin, then overlay by priority, then geography) are explained in
:mod:`terrmap.plan.accounts`, which validates changes and calls these functions;
this module only knows the tables (``leads``, ``plan_assignments``, ``territories``,
``overlays``, ``account_pins``) and returns DataFrames or plain values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import duckdb
import pandas as pd

from terrmap.data.plans import PlanInfo, plan_exists  # noqa: F401 (plan_exists: the checks in plan.accounts use it)
from terrmap.geo import parse_layer
from terrmap.measures import LEAD_POTENTIAL_SQL

if TYPE_CHECKING:
    from terrmap.data.store import Store

OWNER_COLUMNS = [
    "lead_id", "name", "industry", "employees", "annual_revenue", "status", "score", "expected_value", "potential",
    "deal_value", "lat", "lon", "zip", "region_id", "geo_territory_id", "owner_kind", "owner_id", "owner_name",
    "owner_rep_id", "rule", "n_claims",
]


_CANDIDATE = "candidate_assignments"  # a plan's assignment not saved yet (see account_owners)


def _claims_ctes(plan: PlanInfo, assignments: str = "plan_assignments") -> str:
    """The CTEs every ownership query shares (the plan id is bound as ``$plan_id``); ``assignments``: the table
    of (plan_id, region_id, territory_id) the geography comes from.

    ``geo_owned``: every lead with its region and geographic territory; ``overlay_claims``:
    (lead, overlay) pairs where the overlay's rule matches; ``pins``: pins to territories
    of the plan; ``resolved``: every lead with its winning claim.
    """
    layer = parse_layer(plan.layer)
    region_id = layer.region_id_sql(layer.region_key_sql("l"))
    return f"""
    geo AS (
        SELECT l.lead_id, l.name, l.industry, l.employees, l.annual_revenue, l.status, l.score, l.expected_value,
               {LEAD_POTENTIAL_SQL} AS potential, l.deal_value, l.lat, l.lon, l.zip,
               {region_id} AS region_id
        FROM leads l
    ),
    geo_owned AS (
        SELECT g.*, t.territory_id AS geo_territory_id
        FROM geo g
        LEFT JOIN {assignments} a ON a.plan_id = $plan_id AND a.region_id = g.region_id
        LEFT JOIN territories t ON t.plan_id = $plan_id AND t.territory_id = a.territory_id
    ),
    rules AS (
        SELECT overlay_id, name, rep_id, priority, territories,
               TRY_CAST(json_extract_string(rule, '$.min_employees') AS DOUBLE) AS min_employees,
               TRY_CAST(json_extract_string(rule, '$.max_employees') AS DOUBLE) AS max_employees,
               TRY_CAST(json_extract_string(rule, '$.min_annual_revenue') AS DOUBLE) AS min_annual_revenue,
               json_extract(rule, '$.industries')::VARCHAR[] AS industries
        FROM overlays WHERE plan_id = $plan_id
    ),
    overlay_claims AS (
        SELECT g.lead_id, r.overlay_id, r.name, r.priority
        FROM geo_owned g JOIN rules r
          ON (r.min_employees IS NULL OR g.employees >= r.min_employees)
         AND (r.max_employees IS NULL OR g.employees <= r.max_employees)
         AND (r.min_annual_revenue IS NULL OR g.annual_revenue >= r.min_annual_revenue)
         AND (r.industries IS NULL OR list_contains(r.industries, g.industry))
         AND (r.territories IS NULL OR list_contains(r.territories, g.geo_territory_id))
    ),
    overlay_best AS (
        SELECT lead_id, count(*) AS n_overlays,
               arg_min(overlay_id, (-priority, overlay_id)) AS overlay_id
        FROM overlay_claims GROUP BY lead_id
    ),
    pins AS (
        SELECT p.lead_id, p.territory_id FROM account_pins p
        JOIN territories t ON t.plan_id = $plan_id AND t.territory_id = p.territory_id
        WHERE p.plan_id = $plan_id
    ),
    resolved AS (
        SELECT g.*,
               p.territory_id AS pin_territory_id,
               ob.overlay_id AS best_overlay_id,
               coalesce(ob.n_overlays, 0) AS n_overlays,
               CASE WHEN p.territory_id IS NOT NULL THEN 'pin'
                    WHEN ob.overlay_id IS NOT NULL THEN 'overlay'
                    WHEN g.geo_territory_id IS NOT NULL THEN 'geography'
                    ELSE 'unassigned' END AS rule
        FROM geo_owned g
        LEFT JOIN pins p USING (lead_id)
        LEFT JOIN overlay_best ob USING (lead_id)
    ),
    owners AS (
        SELECT r.lead_id, r.name, r.industry, r.employees, r.annual_revenue, r.status, r.score, r.expected_value,
               r.potential, r.deal_value, r.lat, r.lon, r.zip, r.region_id,
               r.geo_territory_id::BIGINT AS geo_territory_id,
               CASE r.rule WHEN 'pin' THEN 'territory' WHEN 'overlay' THEN 'overlay'
                           WHEN 'geography' THEN 'territory' END AS owner_kind,
               (CASE r.rule WHEN 'pin' THEN r.pin_territory_id WHEN 'overlay' THEN r.best_overlay_id
                            WHEN 'geography' THEN r.geo_territory_id END)::BIGINT AS owner_id,
               coalesce(o.name, t.name) AS owner_name,
               coalesce(o.rep_id, t.rep_id) AS owner_rep_id,
               r.rule,
               -- a pin to the account's own geographic territory is the same claimant, not a second one
               ((r.geo_territory_id IS NOT NULL)::INTEGER + r.n_overlays
                 + (r.pin_territory_id IS NOT NULL
                    AND r.pin_territory_id IS DISTINCT FROM r.geo_territory_id)::INTEGER
               )::INTEGER AS n_claims,
               r.n_overlays, r.pin_territory_id
        FROM resolved r
        LEFT JOIN overlays o ON r.rule = 'overlay' AND o.plan_id = $plan_id AND o.overlay_id = r.best_overlay_id
        LEFT JOIN territories t ON r.rule IN ('pin', 'geography') AND t.plan_id = $plan_id
             AND t.territory_id = CASE r.rule WHEN 'pin' THEN r.pin_territory_id ELSE r.geo_territory_id END
    )
    """


def account_owners(store: Store, plan: PlanInfo, assignment: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per lead (all statuses) with its geographic territory, its owner and the rule that decided.

    Columns: :data:`OWNER_COLUMNS`. ``owner_kind`` is 'territory' or 'overlay' (None when
    nobody owns the account), ``rule`` one of :data:`RULES`, ``n_claims`` the number of
    distinct claimants (geography, each matching overlay, a pin elsewhere).
    ``assignment`` (region_id, territory_id): the plan with other borders, not saved (an optimizer's
    candidate): its territories, pins and overlays, this geography.
    """
    cur = store.cursor()
    table = "plan_assignments"
    if assignment is not None:
        table = _CANDIDATE
        cur.register(table, pd.DataFrame({"plan_id": int(plan.plan_id),
                                          "region_id": assignment["region_id"].astype(str).to_numpy(),
                                          "territory_id": assignment["territory_id"].astype("Int64")}))
    try:
        query = f"WITH {_claims_ctes(plan, table)} SELECT {', '.join(OWNER_COLUMNS)} FROM owners ORDER BY lead_id"
        # Through Arrow (relation API, no extra copy): for 200k leads about twice as fast as .df().
        df = cur.sql(query, params={"plan_id": int(plan.plan_id)}).to_arrow_table().to_pandas()
    finally:
        if assignment is not None:
            cur.unregister(table)
    for col in ("geo_territory_id", "owner_id"):
        df[col] = df[col].astype("Int64")
    df["n_claims"] = df["n_claims"].astype(int)
    return df[OWNER_COLUMNS]


NO_OWNER = "Unassigned"  # the owner name of an account nobody owns


def owner_changes(before: pd.DataFrame, after: pd.DataFrame, nobody: str = NO_OWNER) -> pd.DataFrame:
    """The accounts whose owner differs between two :func:`account_owners` frames (by owner name: two plans'
    territories are told apart by name), largest potential first: lead_id, name, from_owner, to_owner,
    potential, status. ``nobody``: the owner name of an account nobody owns."""
    a = before[["lead_id", "name", "status", "potential", "owner_name"]]
    m = a.merge(after[["lead_id", "owner_name"]], on="lead_id", how="outer", suffixes=("_a", "_b"))
    m["from_owner"] = m["owner_name_a"].fillna(nobody)
    m["to_owner"] = m["owner_name_b"].fillna(nobody)
    moved = m[m["from_owner"] != m["to_owner"]].sort_values(["potential", "lead_id"], ascending=[False, True])
    return moved[["lead_id", "name", "from_owner", "to_owner", "potential", "status"]].reset_index(drop=True)


def territory_metrics(store: Store, plan: PlanInfo) -> pd.DataFrame:
    """One row per owner: every territory of the plan (even empty), then every overlay.

    Columns: owner_kind, owner_id, name, rep_id, color and :data:`METRIC_COLUMNS`; each
    account counts once, for its owner (see :func:`account_owners`). ``regions`` is the
    number of the plan's regions assigned to a territory (0 for overlays). ``scored_open``
    (open leads with a score, the weight of ``avg_score``) lets roll-ups average exactly.
    """
    cur = store.cursor()
    query = f"""
    WITH {_claims_ctes(plan)},
    per_owner AS (
        SELECT owner_kind, owner_id,
               count(*) AS leads,
               count(*) FILTER (WHERE status = 'open') AS open_leads,
               count(*) FILTER (WHERE status = 'won') AS customers,
               coalesce(sum(deal_value) FILTER (WHERE status = 'won'), 0) AS won_revenue,
               coalesce(sum(potential), 0) AS potential,
               avg(score) FILTER (WHERE status = 'open') AS avg_score,
               count(score) FILTER (WHERE status = 'open') AS scored_open
        FROM owners WHERE owner_kind IS NOT NULL GROUP BY ALL
    ),
    region_counts AS (
        SELECT territory_id, count(*) AS regions FROM plan_assignments
        WHERE plan_id = $plan_id AND territory_id IS NOT NULL GROUP BY territory_id
    ),
    all_owners AS (
        SELECT 'territory' AS owner_kind, 0 AS kind_order, territory_id::BIGINT AS owner_id, name, rep_id, color,
               coalesce(rc.regions, 0) AS regions
        FROM territories LEFT JOIN region_counts rc USING (territory_id) WHERE plan_id = $plan_id
        UNION ALL
        SELECT 'overlay', 1, overlay_id::BIGINT, name, rep_id, color, 0 FROM overlays WHERE plan_id = $plan_id
    )
    SELECT a.owner_kind, a.owner_id, a.name, a.rep_id, a.color,
           coalesce(p.leads, 0)::BIGINT AS leads, coalesce(p.open_leads, 0)::BIGINT AS open_leads,
           coalesce(p.customers, 0)::BIGINT AS customers, coalesce(p.won_revenue, 0)::DOUBLE AS won_revenue,
           coalesce(p.potential, 0)::DOUBLE AS potential, p.avg_score::DOUBLE AS avg_score,
           a.regions::BIGINT AS regions, coalesce(p.scored_open, 0)::BIGINT AS scored_open
    FROM all_owners a LEFT JOIN per_owner p USING (owner_kind, owner_id)
    ORDER BY a.kind_order, a.owner_id
    """
    df = cur.sql(query, params={"plan_id": int(plan.plan_id)}).df()
    df["owner_id"] = df["owner_id"].astype("Int64")
    return df


def exceptions_by_region(store: Store, plan: PlanInfo) -> pd.DataFrame:
    """The accounts owned by exception (a pin, or an overlay), summed per (region, owner).

    Columns: region_id, rule ('pin' | 'overlay'), owner_id, overlay_behind (a pinned account an
    overlay would own without the pin), leads, open_leads, customers, won_revenue, potential,
    score_sum, scored_open. The editor takes these out of their
    regions' tallies (and adds the pinned ones to their territory), so its balance counts
    each account once, where it is owned, while regions move.
    """
    query = f"""
    WITH {_claims_ctes(plan)}
    SELECT region_id, rule, owner_id, (rule = 'pin' AND n_overlays > 0) AS overlay_behind,
           count(*) AS leads,
           count(*) FILTER (WHERE status = 'open') AS open_leads,
           count(*) FILTER (WHERE status = 'won') AS customers,
           coalesce(sum(deal_value) FILTER (WHERE status = 'won'), 0) AS won_revenue,
           coalesce(sum(potential), 0) AS potential,
           coalesce(sum(score) FILTER (WHERE status = 'open'), 0) AS score_sum,
           count(score) FILTER (WHERE status = 'open') AS scored_open
    FROM owners WHERE rule IN ('pin', 'overlay') GROUP BY ALL ORDER BY ALL
    """
    df = store.cursor().sql(query, params={"plan_id": int(plan.plan_id)}).df()
    df["owner_id"] = df["owner_id"].astype("Int64")
    return df


def overlap_report(store: Store, plan: PlanInfo) -> pd.DataFrame:
    """Accounts claimed by more than one owner, with every claim and how it was resolved.

    Columns: lead_id, name, potential, claims (e.g. ``Dallas (geography); Enterprise (overlay);
    Austin (pin)``: geography first, marked "pinned" when pinned to its own territory, then overlays
    from the strongest, then a pin elsewhere), owner_name,
    resolved_by: 'pin' (a named-account pin beats everything), 'overlay priority' (several
    overlays matched: the highest priority won), 'overlay over geography'. Largest potential first.
    """
    query = f"""
    WITH {_claims_ctes(plan)},
    multi AS (SELECT * FROM owners WHERE n_claims > 1),
    claims AS (
        SELECT m.lead_id, 0 AS ord, 0 AS priority, 0 AS overlay_id,
               t.name || CASE WHEN m.pin_territory_id = m.geo_territory_id THEN ' (geography, pinned)'
                              ELSE ' (geography)' END AS claim
        FROM multi m JOIN territories t ON t.plan_id = $plan_id AND t.territory_id = m.geo_territory_id
        UNION ALL
        SELECT c.lead_id, 1, c.priority, c.overlay_id, c.name || ' (overlay)'
        FROM overlay_claims c SEMI JOIN multi m USING (lead_id)
        UNION ALL
        SELECT m.lead_id, 2, 0, 0, t.name || ' (pin)'
        FROM multi m JOIN territories t ON t.plan_id = $plan_id AND t.territory_id = m.pin_territory_id
        WHERE m.pin_territory_id IS DISTINCT FROM m.geo_territory_id
    ),
    claim_text AS (
        SELECT lead_id, string_agg(claim, '; ' ORDER BY ord, priority DESC, overlay_id) AS claims
        FROM claims GROUP BY lead_id
    )
    SELECT m.lead_id, m.name, m.potential, c.claims, m.owner_name,
           CASE WHEN m.rule = 'pin' THEN 'pin'
                WHEN m.rule = 'overlay' AND m.n_overlays > 1 THEN 'overlay priority'
                WHEN m.rule = 'overlay' THEN 'overlay over geography'
                ELSE m.rule END AS resolved_by
    FROM multi m JOIN claim_text c USING (lead_id)
    ORDER BY m.potential DESC, m.lead_id
    """
    return store.cursor().execute(query, {"plan_id": int(plan.plan_id)}).df()


# ---------------------------------------------------------------------------
# Existence checks (``con``: a store cursor or an open transaction)
# ---------------------------------------------------------------------------


def territory_ids(con: duckdb.DuckDBPyConnection, plan_id: int) -> set[int]:
    return {r[0] for r in con.execute("SELECT territory_id FROM territories WHERE plan_id = ?", [plan_id]).fetchall()}


def rep_exists(con: duckdb.DuckDBPyConnection, rep_id: str) -> bool:
    return bool(con.execute("SELECT 1 FROM reps WHERE rep_id = ?", [rep_id]).fetchall())


def lead_exists(con: duckdb.DuckDBPyConnection, lead_id: str) -> bool:
    return bool(con.execute("SELECT 1 FROM leads WHERE lead_id = ?", [lead_id]).fetchall())


# ---------------------------------------------------------------------------
# Named-account pins
# ---------------------------------------------------------------------------


def upsert_pin(con: duckdb.DuckDBPyConnection, plan_id: int, lead_id: str, territory_id: int,
               reason: str | None) -> None:
    """Write (or replace) the pin of ``lead_id`` in the plan."""
    con.execute(
        "INSERT INTO account_pins (plan_id, lead_id, territory_id, reason) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (plan_id, lead_id) DO UPDATE SET territory_id = excluded.territory_id, "
        "reason = excluded.reason, pinned_at = now()",
        [plan_id, lead_id, int(territory_id), reason],
    )


def pin_exists(con: duckdb.DuckDBPyConnection, plan_id: int, lead_id: str) -> bool:
    return bool(con.execute("SELECT 1 FROM account_pins WHERE plan_id = ? AND lead_id = ?",
                            [plan_id, lead_id]).fetchall())


def delete_pin(con: duckdb.DuckDBPyConnection, plan_id: int, lead_id: str) -> None:
    con.execute("DELETE FROM account_pins WHERE plan_id = ? AND lead_id = ?", [plan_id, lead_id])


def list_pins(store: Store, plan_id: int) -> pd.DataFrame:
    """The plan's pins: lead_id, name, territory_id, territory, reason, pinned_at (newest first)."""
    return store.cursor().execute(
        """
        SELECT p.lead_id, l.name, p.territory_id, t.name AS territory, p.reason, p.pinned_at
        FROM account_pins p
        LEFT JOIN (SELECT lead_id, any_value(name) AS name FROM leads GROUP BY lead_id) l USING (lead_id)
        LEFT JOIN territories t ON t.plan_id = p.plan_id AND t.territory_id = p.territory_id
        WHERE p.plan_id = ? ORDER BY p.pinned_at DESC, p.lead_id
        """,
        [plan_id],
    ).df()


# ---------------------------------------------------------------------------
# Segment overlays
# ---------------------------------------------------------------------------


def overlay_named(con: duckdb.DuckDBPyConnection, plan_id: int, name: str, other_than: int | None) -> int | None:
    """The id of another overlay of the plan with ``name`` (case-insensitive), None when there is none."""
    rows = con.execute(
        "SELECT overlay_id FROM overlays WHERE plan_id = ? AND lower(name) = lower(?) AND overlay_id IS DISTINCT FROM ?",
        [plan_id, name, other_than],
    ).fetchall()
    return rows[0][0] if rows else None


def next_overlay_id(con: duckdb.DuckDBPyConnection, plan_id: int) -> int:
    return int(con.execute("SELECT coalesce(max(overlay_id), 0) + 1 FROM overlays WHERE plan_id = ?",
                           [plan_id]).fetchall()[0][0])


def overlay_color(con: duckdb.DuckDBPyConnection, plan_id: int, overlay_id: int) -> tuple[str | None] | None:
    """``(color,)`` of an existing overlay (the colour may be None), None when the overlay does not exist."""
    rows = con.execute("SELECT color FROM overlays WHERE plan_id = ? AND overlay_id = ?",
                       [plan_id, overlay_id]).fetchall()
    return rows[0] if rows else None


def overlay_exists(con: duckdb.DuckDBPyConnection, plan_id: int, overlay_id: int) -> bool:
    return bool(con.execute("SELECT 1 FROM overlays WHERE plan_id = ? AND overlay_id = ?",
                            [plan_id, overlay_id]).fetchall())


def delete_overlay_row(con: duckdb.DuckDBPyConnection, plan_id: int, overlay_id: int) -> None:
    con.execute("DELETE FROM overlays WHERE plan_id = ? AND overlay_id = ?", [plan_id, overlay_id])


def insert_overlay(con: duckdb.DuckDBPyConnection, plan_id: int, overlay_id: int, name: str, rep_id: str | None,
                   color: str, rule_json: str, territories: list[int] | None, priority: int) -> None:
    con.execute(
        "INSERT INTO overlays (plan_id, overlay_id, name, rep_id, color, rule, territories, priority) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [plan_id, int(overlay_id), name, rep_id, color, rule_json, territories, int(priority)],
    )


def overlay_rows(store: Store, plan_id: int) -> pd.DataFrame:
    """The plan's overlays as stored: overlay_id, name, rep_id, color, rule (JSON), territories, priority."""
    return store.cursor().execute(
        "SELECT overlay_id, name, rep_id, color, rule::VARCHAR AS rule, territories, priority "
        "FROM overlays WHERE plan_id = ? ORDER BY priority DESC, overlay_id",
        [plan_id],
    ).df()


def structure_digest(store: Store, plan_id: int) -> str:
    """An MD5 of the plan's pins, overlays, hierarchy nodes and territories (names, colours, reps, parents):
    changes whenever any of them does (milliseconds)."""
    return str(store.cursor().execute(
        """
        SELECT md5(concat_ws('|',
            (SELECT string_agg(concat_ws(',', lead_id, territory_id), ';' ORDER BY lead_id)
               FROM account_pins WHERE plan_id = $p),
            (SELECT string_agg(concat_ws(',', overlay_id, name, rep_id, color, rule, territories::VARCHAR, priority),
                               ';' ORDER BY overlay_id) FROM overlays WHERE plan_id = $p),
            (SELECT string_agg(concat_ws(',', node_id, name, level, parent, color), ';' ORDER BY node_id)
               FROM hierarchy_nodes WHERE plan_id = $p),
            (SELECT string_agg(concat_ws(',', territory_id, name, color, rep_id, parent), ';' ORDER BY territory_id)
               FROM territories WHERE plan_id = $p)))
        """,
        {"p": plan_id},
    ).fetchall()[0][0])


def find_leads(store: Store, text: str) -> pd.DataFrame:
    """Leads whose id or name contains ``text`` (case-insensitive), by lead id, at most 200:
    lead_id, name, industry, employees, status, zip."""
    pattern = f"%{text}%"
    return store.df(
        "SELECT lead_id, name, industry, employees, status, zip FROM leads "
        "WHERE lead_id ILIKE ? OR name ILIKE ? ORDER BY lead_id LIMIT 200",
        [pattern, pattern],
    )


def lead_industries(store: Store) -> list[str]:
    """The distinct industries of the leads (NULL left out), sorted."""
    return store.df("SELECT DISTINCT industry FROM leads WHERE industry IS NOT NULL ORDER BY 1")["industry"].tolist()
