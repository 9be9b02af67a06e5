// Generated from terrmap.measures.formats_js() by terrmap.app.elements.write_formats_script(): do not edit.
(function() {
    var nf = new Intl.NumberFormat('en-US');
    function money(v) {
        var a = Math.abs(v), s = v < 0 ? '-' : '', u = [[1, ""], [1000.0, "K"], [1000000.0, "M"], [1000000000.0, "B"]], i = 0;
        function digits(x) { return x < 10 ? 2 : x < 100 ? 1 : 0; }
        while (i + 1 < u.length && a >= u[i + 1][0]) i++;
        for (;;) {
            var x = a / u[i][0], d = u[i][0] === 1 ? 0 : digits(x), r = Number(x.toFixed(d));
            if (u[i][0] !== 1 && digits(r) !== d) { d = digits(r); r = Number(x.toFixed(d)); }
            if (r < 1000 || i === u.length - 1) {
                return s + '$' + (d === 0 ? nf.format(r) : r.toFixed(d)) + u[i][1];
            }
            i++;
        }
    }
    var tm = window.tm = window.tm || {};
    tm.money = money;
})();
