"""terrmap.serve: the frontend's static folder that tells Streamlit's bundle where the server is."""

from pathlib import Path

from streamlit import file_util

from terrmap.serve import static_dir_with_server_base


def test_index_says_where_the_server_is_and_everything_else_is_streamlits_own(tmp_path):
    original = Path(file_util.get_static_dir())
    served = Path(static_dir_with_server_base(str(original), "/plans/", cache_root=str(tmp_path)))
    html = (served / "index.html").read_text()
    own = (original / "index.html").read_text()
    # the hint comes before the bundle, with the base path normalised
    assert html.index("BACKEND_BASE_URL: window.location.origin + \"/plans/\"") < html.index('<script type="module"')
    assert html.replace(html[html.index("<script>window.__streamlit"):html.index('<script type="module"')], "") == own
    assert sorted(p.name for p in served.iterdir()) == sorted(p.name for p in original.iterdir())
    assert (served / "static").resolve() == (original / "static").resolve()
    # made once per build and base path
    assert static_dir_with_server_base(str(original), "plans", cache_root=str(tmp_path)) == str(served)
    root = static_dir_with_server_base(str(original), "", cache_root=str(tmp_path))
    assert root != str(served) and 'window.location.origin + "/"}' in (Path(root) / "index.html").read_text()


def test_an_unknown_frontend_build_is_served_as_it_is(tmp_path):
    build = tmp_path / "static"
    build.mkdir()
    (build / "index.html").write_text("<html><script src='x.js'></script></html>")
    assert static_dir_with_server_base(str(build), "", cache_root=str(tmp_path)) == str(build)


def test_the_app_listens_on_this_machine_only_unless_told_otherwise():
    """Issue 18.4 (a first step): Streamlit listens on every network interface by default; terrmap has no sign-in
    yet, so ./run app binds to 127.0.0.1 unless an address is given."""
    from terrmap.serve import streamlit_argv

    def address(argv):
        return argv[argv.index("--server.address") + 1] if "--server.address" in argv else \
            next(a.split("=", 1)[1] for a in argv if a.startswith("--server.address="))

    assert address(streamlit_argv([])) == "127.0.0.1"
    assert address(streamlit_argv(["--server.port", "8502", "--", "--db", "x.duckdb"])) == "127.0.0.1"
    assert address(streamlit_argv(["--server.address", "0.0.0.0"])) == "0.0.0.0"
    assert address(streamlit_argv(["--server.address=0.0.0.0"])) == "0.0.0.0"
    # an app option after "--" is the app's, not Streamlit's
    argv = streamlit_argv(["--", "--server.address", "10.0.0.1"])
    assert argv[argv.index("--server.address") + 1] == "127.0.0.1" and argv[-1] == "10.0.0.1"
