// Generated from terrmap.measures.formats_js() by terrmap.app.elements.write_formats_script(): do not edit.
(function() {
    var nf = new Intl.NumberFormat('en-US');
    function money(v) {
        var a = Math.abs(v), s = v < 0 ? '-' : '', u = [[1000000000.0, "B"], [1000000.0, "M"], [1000.0, "K"]];
        for (var j = 0; j < u.length; j++) {
            if (a >= u[j][0]) { var x = a / u[j][0];
                return s + '$' + x.toFixed(x < 10 ? 2 : x < 100 ? 1 : 0) + u[j][1]; }
        }
        return s + '$' + nf.format(Math.round(a));
    }
    var tm = window.tm = window.tm || {};
    tm.money = money;
})();
