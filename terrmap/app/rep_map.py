"""The rep view's map: the rep's footprint regions (only those), accounts, home and visit route
(data from :mod:`terrmap.rep.footprint`; drawn by ``tm.repOverlay`` in static/terrmap/rep.js)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import folium.elements
import pandas as pd
from folium.template import Template

from terrmap.app.elements import REP_CSS, REP_JS, RawMacroElement, StaticAssets
from terrmap.app.geometry import default_decimals
from terrmap.app.html_safe import esc, is_missing, js_json
from terrmap.app.map_data import MapData, map_data
from terrmap.app.maps import build_map
from terrmap.geo import parse_layer
from terrmap.measures import fmt_money, fmt_pct
from terrmap.plan import PlanInfo
from terrmap.rep.footprint import Rep, footprint_frame, footprint_territories
from terrmap.rep.route import Route

if TYPE_CHECKING:
    from terrmap.data.store import Store


def footprint_map_data(store: Store, plan: PlanInfo, rep_id: str, feet: pd.DataFrame, stats: pd.DataFrame,
                       places: pd.DataFrame | None = None) -> MapData:
    frame = footprint_frame(rep_id, feet, stats, places)
    layer = parse_layer(plan.layer)
    shapes = layer.shapes(store, frame["region_id"].tolist())
    return map_data(frame, shapes, footprint_territories(store, plan, rep_id, frame), "territory",
                    region_label="ZIP" if plan.layer == "zip" else "H3 cell",
                    decimals=default_decimals(plan.layer))


class RepOverlay(folium.elements.JSCSSMixin, RawMacroElement):
    """Home, account markers (route stops numbered and highlighted) and the route polyline.

    Every string in the payload is already escaped (:func:`terrmap.app.html_safe.esc`).
    """

    default_js = [REP_JS]
    _template = Template(
        "{% macro script(this, kwargs) %}"
        "tm.repOverlay({{ this._parent.get_name() }}, JSON.parse({{ this.payload }}));"
        "{% endmacro %}"
    )

    def __init__(self, payload: dict):
        super().__init__()
        self._name = "RepOverlay"
        self.payload = js_json(js_json(payload))


class RepMapStyle(StaticAssets):
    default_css = [REP_CSS]


def _account_tip(row, stop: int) -> str:
    head = f"<div class='tm-h'>{'#' + str(stop) + ' · ' if stop else ''}{esc(row.name)}</div>"
    where = " · ".join(esc(x) for x in (row.industry, row.city) if not is_missing(x))
    return (f"{head}<div class='tm-r'>{where}</div><table>"
            f"<tr><td>Rank</td><td>{int(row.rank)}</td></tr>"
            f"<tr><td>Score</td><td>{fmt_pct(row.score, 1)}</td></tr>"
            f"<tr><td>Expected value</td><td>{fmt_money(row.expected_value)}</td></tr>"
            f"<tr><td>Deal value if won</td><td>{fmt_money(row.deal_value_if_won)}</td></tr></table>")


def overlay_payload(rep: Rep, ranked: pd.DataFrame, stops: pd.DataFrame | None, closed: bool,
                    max_markers: int = 300) -> dict:
    """Markers for the top ``max_markers`` ranked accounts and the route's stops (numbered)."""
    stop_of = {} if stops is None else dict(zip(stops["lead_id"], stops["stop"]))
    shown = ranked[ranked["lat"].notna() & ranked["lon"].notna()]
    shown = pd.concat([shown.head(max_markers), shown[shown["lead_id"].isin(stop_of)]]).drop_duplicates("lead_id")
    acc = [[round(float(r.lat), 5), round(float(r.lon), 5), _account_tip(r, stop_of.get(r.lead_id, 0)),
            int(stop_of.get(r.lead_id, 0))] for r in shown.itertuples(index=False)]
    acc.sort(key=lambda a: a[3])  # stops last: drawn on top
    home = [round(rep.home_lat, 5), round(rep.home_lon, 5)] if rep.has_home else None
    route = []
    if home and stops is not None and len(stops):
        route = [home] + [[round(float(a), 5), round(float(b), 5)] for a, b in zip(stops["lat"], stops["lon"])]
        if closed:
            route.append(home)
    home_tip = (f"<div class='tm-h'>Home · {esc(rep.name)}</div>"
                f"<div class='tm-r'>{esc(rep.home_metro or '')} {esc(rep.home_zip or '')}</div>")
    return {"acc": acc, "home": home, "home_tip": home_tip, "route": route}


def build_rep_map(data: MapData, rep: Rep, ranked: pd.DataFrame, stops: pd.DataFrame | None, closed: bool,
                  route: Route | None = None, outlines: dict | None = None,
                  static_base: str | None = None, max_markers: int = 300):
    """The folium map: the rep's footprint regions (only those), accounts, home and route."""
    note = None
    if route is not None and stops is not None:
        note = f"Route: {len(stops)} stops, {route.total_km:,.0f} km" + (" round trip" if closed else "")
    kwargs = {"static_base": static_base} if static_base else {}
    # "core": a footprint mostly in the lower 48 opens there, not zoomed out to include Puerto Rico
    m = build_map(data, outlines=outlines, note=note, fit="core", **kwargs)
    RepMapStyle().add_to(m)
    RepOverlay(overlay_payload(rep, ranked, stops, closed, max_markers)).add_to(m)
    return m
