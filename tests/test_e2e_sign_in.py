"""Sign-in end to end in Debian's Chromium against a local OpenID Connect provider (``oidc-provider-mock``, run
by this test on a free port of this machine): a rep signs in and sees their own rep view only, a planner signs
in and saves an edit that the change log records under their e-mail.

The app is ``python -m terrmap.serve`` with its own copy of the end-to-end database and a secrets file
(Streamlit's ``secrets.files`` option, as STREAMLIT_SECRETS_FILES) naming the provider and the roles. The
provider's pages ask a CDN for a stylesheet: the browser is refused every request that would leave this machine.
"""

from __future__ import annotations

import re
import secrets
import shutil
from pathlib import Path
from urllib.parse import urlparse

import duckdb
import pytest
from playwright.sync_api import expect

from tests.e2e_support import ARTIFACTS, Recorder, serve_app, wait_idle
from tests.test_e2e_editor import _click_other_region, _open_editor, _save

REP = "R07"
OTHER_REP = "R08"
PLANNER = "pat.planner@example.test"
LOCAL_HOSTS = ("127.0.0.1", "localhost")


@pytest.fixture(scope="module")
def auth_db(e2e_built, tmp_path_factory) -> Path:
    """A copy of the end-to-end database for this server alone (the planner's save writes to it)."""
    db = tmp_path_factory.mktemp("e2e-sign-in") / "signin.duckdb"
    shutil.copy(e2e_built, db)
    return db


@pytest.fixture(scope="module")
def rep_email(auth_db) -> str:
    con = duckdb.connect(str(auth_db), read_only=True)
    try:
        return con.execute("SELECT email FROM reps WHERE rep_id = ?", [REP]).fetchall()[0][0]
    finally:
        con.close()


@pytest.fixture(scope="module")
def provider(rep_email):
    """The OpenID Connect provider on a free port: its URL. Its sign-in form offers the predefined users as
    buttons (by their ``sub``); the ID token carries their claims."""
    from oidc_provider_mock import User, run_server_in_thread  # a test-only dependency (requirements.txt)

    users = [User(sub="rep", claims={"email": rep_email, "name": "Rita Rep"}),
             User(sub="planner", claims={"email": PLANNER, "name": "Pat Planner"})]
    with run_server_in_thread(port=0, user_claims=users) as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture(scope="module")
def app(auth_db, provider, tmp_path_factory):
    """terrmap with sign-in: the provider, and the planner's role (the rep is a rep by the reps table)."""
    folder = tmp_path_factory.mktemp("e2e-sign-in-secrets")
    toml = folder / "secrets.toml"
    toml.write_text(
        "[auth]\n"
        'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'  # Streamlit fills in its port
        f'cookie_secret = "{secrets.token_hex(16)}"\n'
        'client_id = "terrmap-e2e"\n'
        'client_secret = "terrmap-e2e-secret"\n'
        f'server_metadata_url = "{provider}/.well-known/openid-configuration"\n'
        "\n[terrmap.roles]\n"
        f'"{PLANNER}" = "planner"\n'
    )
    with serve_app(auth_db, folder / "streamlit.log", env={"STREAMLIT_SECRETS_FILES": str(toml)}) as url:
        yield url


@pytest.fixture
def context(browser, app):
    """A browser of its own (its own cookies: one person) that nothing leaves this machine from."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    ctx = browser.new_context(viewport={"width": 1440, "height": 1100})
    ctx.route(lambda url: urlparse(url).hostname not in LOCAL_HOSTS and urlparse(url).scheme in ("http", "https"),
              lambda route: route.abort())
    recorder = Recorder(ctx)
    yield ctx
    ctx.close()
    assert not recorder.dialogs, f"a script ran in the page: {recorder.dialogs}"
    app_port = urlparse(app).port
    failed = [f for f in recorder.failed if urlparse(f.split(" ", 1)[1]).port == app_port]
    assert not failed, f"the app answered with errors: {failed}"


def _sign_in(page, app_url: str, sub: str) -> None:
    page.goto(app_url)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"^http://localhost:\d+/oauth2/authorize"), timeout=30_000)
    page.get_by_role("button", name=sub, exact=True).click()  # the provider's predefined user
    page.wait_for_url(re.compile(re.escape(app_url) + r"/?(\?.*)?$"), timeout=30_000)
    page.locator('[data-testid="stApp"]').wait_for()
    wait_idle(page, timeout=60_000)


def test_before_sign_in_nothing_of_the_data_shows(context, app):
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{app}/rep?rep={REP}")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=60_000)
    wait_idle(page)
    assert page.locator('[data-testid="stMetric"]').count() == 0
    assert page.locator('[data-testid="stSidebarNav"]').count() == 0
    assert page.get_by_text("Page not found").count() == 0  # a bookmark opens on the sign-in screen


def test_a_rep_signs_in_and_sees_only_their_own_rep_view(context, app, rep_email):
    page = context.new_page()
    page.set_default_timeout(30_000)
    _sign_in(page, app, "rep")
    # the rep's home is their rep view, pinned to them: one page, no navigation to the others
    expect(page.get_by_role("heading", name="Rep view")).to_be_visible(timeout=60_000)
    expect(page.locator('[data-testid="stMetric"]').first).to_be_visible(timeout=60_000)
    rep_box = page.get_by_role("combobox", name="Rep")
    expect(rep_box).to_have_value(re.compile(rf"\({REP}\)"))
    expect(rep_box).to_be_disabled()
    assert page.url.endswith(f"?rep={REP}")
    expect(page.locator('[data-testid="stSidebar"]')).to_contain_text(f"Rita Rep ({rep_email}) · rep {REP}")
    assert page.locator('[data-testid="stSidebarNav"]').count() == 0
    page.screenshot(path=str(ARTIFACTS / "sign_in_rep.png"))

    # another rep's view by URL: refused, nothing of theirs shown
    page.goto(f"{app}/rep?rep={OTHER_REP}")
    expect(page.get_by_text("you can open only your own rep view")).to_be_visible(timeout=60_000)
    wait_idle(page)
    assert page.locator('[data-testid="stMetric"]').count() == 0
    assert page.locator('[data-testid="stDownloadButton"]').count() == 0
    page.screenshot(path=str(ARTIFACTS / "sign_in_rep_refused.png"))

    # the editor, the scenarios (exports) and the map (lookups) are no page of a rep's: their own view opens
    for path in ("editor", "scenarios", "map"):
        page.goto(f"{app}/{path}")
        expect(page.get_by_role("heading", name="Rep view")).to_be_visible(timeout=60_000)
        wait_idle(page)
        for title in ("Territory editor", "Scenarios", "Territory map"):
            assert page.get_by_role("heading", name=title).count() == 0, (path, title)


def _latest_authors(db: Path, tmp: Path) -> tuple[str | None, str | None]:
    """The newest change's and version's author, read from a copy of the database (the server holds it)."""
    for suffix in ("", ".wal"):
        src = Path(str(db) + suffix)
        if src.exists():
            shutil.copy(src, Path(str(tmp / "copy.duckdb") + suffix))
    con = duckdb.connect(str(tmp / "copy.duckdb"))
    try:
        change = con.execute("SELECT author FROM plan_changes ORDER BY change_id DESC LIMIT 1").fetchall()
        version = con.execute("SELECT author FROM plan_versions ORDER BY saved_at DESC, version DESC LIMIT 1").fetchall()
    finally:
        con.close()
    return (change[0][0] if change else None), (version[0][0] if version else None)


def test_a_planner_signs_in_and_their_save_records_their_email(context, app, auth_db, tmp_path):
    page = context.new_page()
    page.set_default_timeout(30_000)
    _sign_in(page, app, "planner")
    nav = page.locator('[data-testid="stSidebarNav"]')
    for title in ("Home", "Map", "Editor", "Optimizer", "Scenarios", "Rep view"):
        expect(nav.get_by_role("link", name=title, exact=True)).to_be_visible()
    assert nav.get_by_role("link", name="Import data", exact=True).count() == 0  # the admin's

    frame = _open_editor(page, app)
    # no "Your name" box: the change log takes the signed-in person
    assert page.get_by_role("textbox", name="Your name").count() == 0
    expect(page.get_by_text(f"Saved as {PLANNER}")).to_be_visible()
    _click_other_region(page, frame)
    assert "Saved" in _save(page)
    page.screenshot(path=str(ARTIFACTS / "sign_in_planner_saved.png"))
    assert _latest_authors(auth_db, tmp_path) == (PLANNER, PLANNER)

    # the scenarios page names them as the last to change the plan
    page.goto(f"{app}/scenarios")
    page.get_by_text("All scenarios").wait_for(timeout=90_000)
    expect(page.locator('[data-testid="stDataFrame"]').first).to_contain_text(PLANNER, timeout=30_000)
