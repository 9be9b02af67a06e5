// Drawing regions from terrmap's compact payload (terrmap.app.map_data.MapData.payload), shared by
// the map (terrmap.app.elements.RegionLayer), the editor (editor.js) and the rep view (rep.js).
// Every string in a payload is already HTML-escaped in Python; this file only concatenates them.
// Needs Leaflet and formats.js (tm.money) loaded first.
(function() {
    var tm = window.tm = window.tm || {};
    var nf = new Intl.NumberFormat('en-US');

    // One ring: flat ints, first vertex absolute then deltas, (lng, lat) in 1/Q degrees
    // (terrmap.app.geometry.encode_ring) -> Leaflet's [lat, lng] pairs.
    function ring(a, Q) {
        var out = new Array(a.length / 2), x = 0, y = 0;
        for (var j = 0; j < a.length; j += 2) { x += a[j]; y += a[j + 1]; out[j / 2] = [y / Q, x / Q]; }
        return out;
    }

    // One region's geometry (per polygon, per ring) -> Leaflet lat/lng arrays.
    tm.decodeGeometry = function(g, Q) {
        return g.map(function(p) { return p.map(function(r) { return ring(r, Q); }); });
    };

    // A compact value of the payload as people read it (the same as terrmap.measures.fmt_value):
    // counts as ints, money in dollars, scores in per mille; -1 is missing.
    tm.value = function(v, kind) {
        if (v < 0 && kind !== 'money') return '\u2013';
        return kind === 'money' ? tm.money(v) : kind === 'pct' ? Math.round(v / 10) + '%' : nf.format(v);
    };

    // The tooltip of region i: territory (ter: escaped labels), region id and place, one row per measure
    // (row hl in bold); note: escaped HTML after the place.
    tm.regionTip = function(D, i, ter, hl, note) {
        var t = D.t[i];
        var h = '<div class="tm-h">' + (t >= 0 && t < ter.length ? ter[t] : D.na) + '</div>'
              + '<div class="tm-r">' + D.rl + ' ' + D.id[i] + (D.p[i] ? ' · ' + D.p[i] : '') + (note || '')
              + '</div><table>';
        for (var k = 0; k < D.lab.length; k++) {
            h += '<tr' + (k === hl ? ' class="tm-hl"' : '') + '><td>' + D.lab[k] + '</td><td>'
               + tm.value(D.v[k][i], D.kind[k]) + '</td></tr>';
        }
        return h + '</table>';
    };

    // All regions of D as one feature group: one L.polygon each (l.tm: payload index, l.tmStyle: the
    // style to return to after hover), one tooltip and one pair of hover handlers for the whole layer.
    // o.style(col) / o.rest(col): a region's initial / resting style for fill colour col;
    // o.tip(l): tooltip HTML; o.hover(l): hover style.
    // D.cv (terrmap.app.map_data.CANVAS_REGIONS): paint every region on one canvas instead of one SVG
    // path each. Tens of thousands of SVG paths take seconds to lay out and stutter when panned; the
    // canvas renderer hit-tests the polygons itself, so hover, tooltips and clicks work the same.
    tm.regionLayer = function(D, o) {
        var layer = L.featureGroup(), polys = new Array(D.id.length);
        var renderer = D.cv ? L.canvas({padding: 0.3}) : null;
        for (var i = 0; i < D.id.length; i++) {
            var c = D.c[i], col = c >= 0 ? D.pal[c] : D.nc;
            var ps = tm.decodeGeometry(D.g[i], D.q);
            var st = L.extend({fillColor: col}, o.style(col));
            if (renderer) st.renderer = renderer;
            var l = L.polygon(ps.length === 1 ? ps[0] : ps, st);
            l.tm = i;
            l.tmStyle = o.rest(col);
            polys[i] = l;
            layer.addLayer(l);
        }
        layer.bindTooltip(o.tip, {sticky: true, className: 'tm-tip', opacity: 0.97});
        layer.on('mouseover', function(e) { e.layer.setStyle(o.hover(e.layer)); });
        layer.on('mouseout', function(e) { e.layer.setStyle(e.layer.tmStyle); });
        layer.tmPolys = polys;
        return layer;
    };

    // Adds the regions to the map and marks its container once they are painted: data-tm-render
    // ("canvas" or "svg") and data-tm-drawn (how many regions; the tests and benchmarks wait for it,
    // since a canvas has no element per region to count). Leaflet paints a canvas on the next
    // animation frame, queued before ours.
    tm.addRegions = function(map, layer) {
        var box = map.getContainer(), n = layer.tmPolys.length;
        layer.addTo(map);
        box.setAttribute('data-tm-render', n && layer.tmPolys[0].options.renderer ? 'canvas' : 'svg');
        L.Util.requestAnimFrame(function() { box.setAttribute('data-tm-drawn', String(n)); });
        return layer;
    };

    // The map's regions (terrmap.app.elements.RegionLayer): outlined in their fill colour.
    tm.drawRegions = function(map, D, o) {
        var base = {fillOpacity: o.fillOpacity, weight: o.weight, opacity: 0.4};
        var hover = {weight: 2.2, color: '#1f2937', opacity: 1};
        var layer = tm.regionLayer(D, {
            style: function(col) { return L.extend({color: col}, base); },
            rest: function(col) { return {color: col, weight: base.weight, opacity: base.opacity}; },
            tip: function(l) { return tm.regionTip(D, l.tm, D.ter, D.hl); },
            hover: function() { return hover; }
        });
        return tm.addRegions(map, layer);
    };

    // State outlines (terrmap.app.elements.OutlineLayer): land under the regions, borders on top,
    // not interactive (clicks pass through to the regions).
    tm.drawOutlines = function(map, G, o) {
        if (!map.getPane('tmLand')) { map.createPane('tmLand').style.zIndex = 350; }
        if (!map.getPane('tmLines')) { var p = map.createPane('tmLines'); p.style.zIndex = 450; p.style.pointerEvents = 'none'; }
        G.g.forEach(function(polys) {
            var ll = tm.decodeGeometry(polys, G.q);
            if (o.land) {
                L.polygon(ll, {pane: 'tmLand', interactive: false, stroke: false, fillColor: o.landColor,
                               fillOpacity: 1}).addTo(map);
            }
            L.polygon(ll, {pane: 'tmLines', interactive: false, fill: false, color: '#4b5563', weight: 0.8,
                           opacity: 0.7}).addTo(map);
        });
    };

    // A control showing fixed, already escaped HTML (the legend, notes); returns its div.
    tm.htmlControl = function(map, position, cssClass, html) {
        var c = L.control({position: position}), div = null;
        c.onAdd = function() {
            div = L.DomUtil.create('div', cssClass);
            div.innerHTML = html;
            L.DomEvent.disableClickPropagation(div);
            L.DomEvent.disableScrollPropagation(div);
            return div;
        };
        c.addTo(map);
        return div;
    };
})();
