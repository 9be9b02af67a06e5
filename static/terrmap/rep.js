// The rep view's map (terrmap.app.rep_map): home, account markers (route stops numbered and
// highlighted) and the route polyline. SVG circles and text labels: no marker images to fetch.
// Every string in P is already HTML-escaped in Python. Needs Leaflet first.
(function() {
    var tm = window.tm = window.tm || {};

    tm.repOverlay = function(map, P) {
        if (!map.getPane('tmRoute')) { map.createPane('tmRoute').style.zIndex = 610; }
        var group = L.featureGroup();
        if (P.route.length > 1) {
            L.polyline(P.route, {pane: 'tmRoute', color: '#111827', weight: 3, opacity: 0.85, dashArray: '6 5',
                                 interactive: false, className: 'tm-route'}).addTo(group);
        }
        P.acc.forEach(function(a) {
            var stop = a[3] > 0;
            var m = L.circleMarker([a[0], a[1]], {pane: 'tmRoute', radius: stop ? 7 : 3.5, weight: stop ? 2 : 1,
                color: stop ? '#111827' : '#374151', fillColor: stop ? '#f97316' : '#ffffff', fillOpacity: 0.95,
                className: stop ? 'tm-acct tm-stop' : 'tm-acct'});
            m.bindTooltip(a[2], {className: 'tm-tip', sticky: true});
            m.addTo(group);
            if (stop) {
                L.marker([a[0], a[1]], {pane: 'tmRoute', interactive: false, keyboard: false,
                    icon: L.divIcon({className: 'tm-stop-label', html: String(a[3]), iconSize: [18, 18],
                                     iconAnchor: [-4, 20]})}).addTo(group);
            }
        });
        if (P.home) {
            var h = L.circleMarker(P.home, {pane: 'tmRoute', radius: 9, weight: 3, color: '#ffffff',
                fillColor: '#111827', fillOpacity: 1, className: 'tm-home'});
            h.bindTooltip(P.home_tip, {className: 'tm-tip'});
            h.addTo(group);
        }
        group.addTo(map);
    };
})();
