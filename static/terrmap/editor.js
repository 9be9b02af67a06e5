// The editor's map (terrmap.app.editor_map): regions restyled in place after each edit, and the
// browser-side helpers of streamlit-folium's iframe. Needs Leaflet, formats.js and regions.js first.
(function() {
    var tm = window.tm = window.tm || {};

    // The regions plus what the editor needs in the browser:
    // window.tmRegions: region id -> polygon; window.tmEditor.polys: by payload index;
    // window.tmEditor.apply(overlay): restyles regions in place (terrmap.app.editor_map.editor_overlay),
    // outlines locked regions (dark, dashed), refreshes the legend and clears drawn shapes.
    tm.editorRegions = function(map, D, o) {
        var pal = D.pal, ter = D.ter, lk = {}, touched = {};
        var base = {fillOpacity: o.fillOpacity, weight: o.weight, opacity: 0.45};
        var hover = {weight: 2.4, color: '#1f2937', opacity: 1, dashArray: null};
        function look(col, locked) {
            return locked ? {color: '#111827', weight: 1.8, opacity: 0.95, dashArray: '4 3'}
                          : {color: col, weight: base.weight, opacity: base.opacity, dashArray: null};
        }
        var layer = tm.regionLayer(D, {
            style: function(col) { return L.extend({color: col}, base); },
            rest: function(col) { return look(col, false); },
            tip: function(l) { return tm.regionTip(D, l.tm, ter, -1, lk[l.tm] ? ' · <b>locked</b>' : ''); },
            hover: function(l) { return lk[l.tm] ? L.extend({}, hover, {dashArray: '4 3'}) : hover; }
        });
        var polys = layer.tmPolys, byId = {}, baseT = D.t.slice();
        for (var i = 0; i < polys.length; i++) byId[D.id[i]] = polys[i];
        // streamlit-folium adds a click listener to every layer; on this group it would report the
        // clicked region's polygon as a drawing ("last_active_drawing"). Clicks reach the map anyway.
        var groupOn = layer.on;
        layer.on = function(types, fn, ctx) { return types === 'click' ? this : groupOn.call(this, types, fn, ctx); };
        tm.addRegions(map, layer);
        var legendDiv = tm.htmlControl(map, 'bottomright', 'tm-legend tm-ed-legend', '');
        legendDiv.style.display = 'none';
        function apply(O) {
            var now = {}, nlk = {}, todo = {}, k, j, g;
            for (g = 0; g < O.ch.length; g++) {
                var ids = O.ch[g][1];
                for (j = 0; j < ids.length; j++) now[ids[j]] = O.ch[g][0];
            }
            for (j = 0; j < O.lk.length; j++) nlk[O.lk[j]] = 1;
            [touched, now, lk, nlk].forEach(function(x) { for (var y in x) todo[y] = 1; });
            if (O.ter) ter = O.ter;
            for (k in todo) {
                var r = +k, inNow = Object.prototype.hasOwnProperty.call(now, k);
                var t = inNow ? now[k] : baseT[r];
                var col = inNow ? (t >= 0 ? O.pal[t] : D.nc) : (D.c[r] >= 0 ? pal[D.c[r]] : D.nc);
                var st = look(col, !!nlk[k]);
                D.t[r] = t;
                polys[r].tmStyle = st;
                polys[r].setStyle(L.extend({fillColor: col}, st));
                if (nlk[k] && !lk[k]) polys[r].bringToFront();
            }
            touched = now;
            lk = nlk;
            if (legendDiv && O.lg !== undefined) {
                legendDiv.innerHTML = O.lg;
                legendDiv.style.display = O.lg ? '' : 'none';
            }
            if (O.clear && window.drawnItems && window.drawnItems.clearLayers) window.drawnItems.clearLayers();
            window.tmEditor.n = O.n;
            map.getContainer().setAttribute('data-tm-applied', String(O.n));
        }
        window.tmRegions = byId;
        window.tmEditor = {apply: apply, polys: polys, layer: layer, map: map, n: -1};
        return layer;
    };

    // For the naive baseline map: window.tmEditor with only the edit counter (no restyling).
    tm.naiveEditorTracker = function(map) {
        window.tmEditor = {n: -1, polys: [], map: map, apply: function(O) {
            this.n = O.n;
            map.getContainer().setAttribute('data-tm-applied', String(O.n));
            if (O.clear && window.drawnItems && window.drawnItems.clearLayers) window.drawnItems.clearLayers();
        }};
    };

    // Browser-side helpers of the editor map (streamlit-folium specific, all optional):
    // * report a click or a finished drawing to the app at once, instead of after the component's
    //   250 ms debounce (the same value the component would send, so it does not send it again);
    // * swallow the click that ends a rectangle or circle drag (it is part of the drawing);
    // * forward Ctrl/Cmd+Z and Ctrl/Cmd+Shift+Z pressed in the map to the app (undo/redo buttons).
    // P: the component's protocol (terrmap.app.folium_protocol.browser_protocol): the order of the
    // returned keys and, per key we can send, the field of the component's global state holding it.
    tm.editorEvents = function(map, P) {
        var drawEnd = 0, drawing = false;
        function sendNow() {
            var G = window[P.state], S = window.Streamlit;
            if (!G || !S || !S.setComponentValue || !G[P.returned] || G[P.wrap]) return;
            var data = {};
            for (var i = 0; i < P.order.length; i++) {
                var k = P.order[i];
                if (G[P.returned].indexOf(k) < 0) continue;
                if (!Object.prototype.hasOwnProperty.call(P.fields, k)) return;  // leave it to the component
                data[k] = G[P.fields[k]];
            }
            if (JSON.stringify(G[P.previous]) === JSON.stringify(data)) return;
            G[P.previous] = data;
            S.setComponentValue(data);
        }
        // streamlit-folium adds a click listener to every layer; on a group (GeoJson, feature group)
        // it reports the clicked region's polygon as a drawing. Clicks reach the map anyway.
        map.eachLayer(function(l) {
            if (!l.getLayers || l === window.drawnItems || l.tmNoGroupClick) return;
            var on0 = l.on;
            l.tmNoGroupClick = true;
            l.on = function(types, fn, ctx) { return types === 'click' ? this : on0.call(this, types, fn, ctx); };
        });
        map.on('click', function() { setTimeout(sendNow, 0); });
        map.on('draw:created', function() { drawEnd = Date.now(); setTimeout(sendNow, 0); });
        // while a shape is drawn (and just after), clicks belong to the drawing, not to the regions under it
        // (Leaflet.draw adds vertices on mouseup; only its vertex markers need their clicks)
        map.on('draw:drawstart', function() { drawing = true; });
        map.on('draw:drawstop', function() { drawing = false; drawEnd = Date.now(); });
        map.getContainer().parentNode.addEventListener('click', function(e) {
            var vertex = e.target && e.target.closest && e.target.closest('.leaflet-editing-icon');
            if ((drawing && !vertex) || Date.now() - drawEnd < 400) { e.stopPropagation(); }
        }, true);
        function forward(type, e) {
            var W = window.parent;
            var ev = new W.KeyboardEvent(type, {key: e.key, code: e.code, ctrlKey: e.ctrlKey, metaKey: e.metaKey,
                                                shiftKey: e.shiftKey, altKey: e.altKey, bubbles: true,
                                                cancelable: true});
            Object.defineProperty(ev, 'keyCode', {get: function() { return 90; }});
            Object.defineProperty(ev, 'which', {get: function() { return 90; }});
            W.document.dispatchEvent(ev);
        }
        document.addEventListener('keydown', function(e) {
            if (!(e.ctrlKey || e.metaKey) || (e.key || '').toLowerCase() !== 'z') return;
            try { forward('keydown', e); forward('keyup', e); e.preventDefault(); } catch (err) {}
        });
    };
})();
