"""Sign-in and roles in the app's scripts (Streamlit AppTest, no browser; the browser and a real OpenID Connect
provider: tests/test_e2e_sign_in.py). ``at.secrets`` configures the provider and the roles, ``at.user`` is the
signed-in person's ID-token claims (what ``st.user`` reads)."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from terrmap.app.html_safe import md
from tests.e2e_support import ROOT

AUTH = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "not-a-secret",
        "client_id": "terrmap", "client_secret": "terrmap", "server_metadata_url":
        "http://localhost:1/.well-known/openid-configuration"}
ROLES = {"roles": {"pat@corp.example": "planner", "lee@corp.example": "leader"}}
REP = "R07"


@pytest.fixture
def rep_email(demo_store) -> str:
    return demo_store.scalar("SELECT email FROM reps WHERE rep_id = ?", [REP])


def _app(monkeypatch, store, script: str = "app.py", user: dict | None = None, signed_in: bool = True,
         roles: dict | None = None, auth: bool = True, **query) -> AppTest:
    monkeypatch.setenv("TERRMAP_DB", str(store.path))
    at = AppTest.from_file(str(ROOT / script), default_timeout=90)
    if auth:
        at.secrets["auth"] = AUTH
        at.secrets["terrmap"] = ROLES if roles is None else roles
        at.user = {"is_logged_in": signed_in, **(user or {})}
    for k, v in query.items():
        at.query_params[k] = v
    return at.run()


def test_before_sign_in_the_app_shows_only_the_sign_in_screen(monkeypatch, demo_store):
    at = _app(monkeypatch, demo_store, signed_in=False)
    assert not at.exception
    assert [b.label for b in at.button] == ["Sign in"]
    assert not at.metric and not at.dataframe and "Database" not in " ".join(c.value for c in at.caption)


def test_a_person_without_a_role_is_told_so_and_sees_nothing(monkeypatch, demo_store):
    at = _app(monkeypatch, demo_store, user={"email": "stranger@else.example"})
    assert not at.exception
    assert "stranger@else.example has no role" in at.warning[0].value
    assert [b.label for b in at.button] == ["Sign out"]
    assert not at.metric and not at.dataframe


def test_a_rep_opens_on_their_own_rep_view(monkeypatch, demo_store, rep_email):
    at = _app(monkeypatch, demo_store, user={"email": rep_email, "name": "The Rep"})
    assert not at.exception
    assert at.title[0].value == "Rep view"
    assert len(at.metric) == 8
    assert at.selectbox(key="rep").value == REP and len(at.selectbox(key="rep").options) == 1
    assert at.selectbox(key="rep").disabled
    assert any("Signed in as" in c.value and md(f"The Rep ({rep_email}) · rep R07") in c.value for c in at.sidebar.caption)


def test_a_rep_cannot_open_another_reps_view_by_url(monkeypatch, demo_store, rep_email):
    at = _app(monkeypatch, demo_store, user={"email": rep_email}, rep="R08")
    assert not at.exception
    assert "only your own rep view" in at.error[0].value
    assert not at.metric and not at.dataframe and not at.get("download_button")
    # nor another plan than the published one
    at = _app(monkeypatch, demo_store, script="pages/rep_view.py", user={"email": rep_email}, plan="No such plan")
    assert not at.error and "published plan" in at.warning[0].value and len(at.metric) == 8


def test_a_leader_sees_scenarios_but_cannot_change_them(monkeypatch, demo_store):
    at = _app(monkeypatch, demo_store, script="pages/scenarios.py", user={"email": "lee@corp.example"})
    assert not at.exception
    for label in ("Publish", "Delete…", "Create scenario", "Rename"):
        buttons = [b for b in at.button if b.label == label] + [b for b in at.get("form_submit_button")
                                                                 if getattr(b, "label", None) == label]
        assert buttons and all(b.disabled for b in buttons), label
    assert not [t for t in at.text_input if t.label == "Your name"]
    assert any("Saved as" in c.value and md("lee@corp.example") in c.value for c in at.caption)


def test_the_editor_and_import_pages_refuse_a_leader(monkeypatch, demo_store):
    for script in ("pages/editor.py", "pages/optimizer.py", "pages/import_data.py"):
        at = _app(monkeypatch, demo_store, script=script, user={"email": "lee@corp.example"})
        assert not at.exception, script
        assert "cannot open this page" in at.error[0].value, script


def test_without_a_provider_everybody_is_the_one_person_at_the_machine(monkeypatch, demo_store):
    at = _app(monkeypatch, demo_store, script="pages/scenarios.py", auth=False)
    assert not at.exception
    assert [t for t in at.text_input if t.label == "Your name"]
    assert not any(b.disabled for b in at.button if b.label in ("Rename", "Create scenario"))


def test_the_lookup_box_tells_a_rep_only_whether_a_zip_is_theirs(demo_store):
    """The Map's lookup (terrmap.app.lookup_box.find) as a rep would get it: a ZIP of their own territory in full,
    another rep's ZIP as "not in your territory", with no territory, rep or hierarchy."""
    from terrmap.access import LOCAL, NOT_YOURS, Role, Viewer
    from terrmap.app import lookup_box
    from terrmap.plan import get_plan

    plan = get_plan(demo_store)
    rows = demo_store.cursor().execute(
        "SELECT a.region_id, t.rep_id FROM plan_assignments a JOIN territories t USING (plan_id, territory_id) "
        "WHERE a.plan_id = ? AND t.rep_id IN (?, 'R08') ORDER BY a.region_id", [plan.plan_id, REP]).fetchall()
    own = next(z for z, r in rows if r == REP)
    other = next(z for z, r in rows if r == "R08")
    rep = Viewer(Role.REP, email="rep@corp.example", rep_id=REP, signed_in=True)
    full = lookup_box.find(demo_store, plan, own, LOCAL).answer
    assert full["rep_id"] == REP and lookup_box.find(demo_store, plan, own, rep).answer == full
    theirs = lookup_box.find(demo_store, plan, other, LOCAL).answer
    hidden = lookup_box.find(demo_store, plan, other, rep).answer
    assert theirs["rep_id"] == "R08" and hidden["reason"] == NOT_YOURS
    assert hidden["rep_id"] is None and hidden["rep_name"] is None and hidden["territory"] is None
    assert not hidden["hierarchy"] and hidden["path"] is None
    said = lookup_box.answer_markdown(hidden)
    assert NOT_YOURS in said and theirs["rep_name"] not in said and theirs["territory"] not in said


def test_a_rep_running_any_other_page_is_stopped_by_the_page_itself(monkeypatch, demo_store, rep_email):
    """The navigation offers a rep no other page; each page also stops for them on its own (a page reached some
    other way shows no data)."""
    for script in ("pages/home.py", "pages/map.py", "pages/scenarios.py", "pages/structure.py", "pages/team.py",
                   "pages/model.py", "pages/editor.py", "pages/optimizer.py", "pages/import_data.py"):
        at = _app(monkeypatch, demo_store, script=script, user={"email": rep_email})
        assert not at.exception, script
        assert "cannot open this page" in at.error[0].value, script
        assert not at.metric and not at.dataframe and not at.get("download_button"), script


def test_malformed_role_settings_stop_every_page_with_the_reason(monkeypatch, demo_store):
    at = _app(monkeypatch, demo_store, user={"email": "pat@corp.example"},
              roles={"roles": {"pat@corp.example": "boss"}})
    assert not at.exception
    assert "sign-in settings are wrong" in at.error[0].value and "unknown role 'boss'" in at.error[0].value
    assert not at.metric and not at.dataframe


def test_a_planners_publish_and_pin_are_logged_under_their_email(monkeypatch, demo_store):
    """Changes that save no version (publishing, pins: terrmap.data.plan_events) record the signed-in person
    too, and the scenario's history lists them."""
    from terrmap.data.plan_events import plan_events
    from terrmap.plan import get_plan
    from terrmap.plan import scenarios as sc

    copy = sc.clone_plan(demo_store, get_plan(demo_store), "Copy to publish", author="someone")
    planner = {"email": "pat@corp.example"}
    monkeypatch.setenv("TERRMAP_DB", str(demo_store.path))
    at = AppTest.from_file(str(ROOT / "pages" / "scenarios.py"), default_timeout=90)
    at.secrets["auth"], at.secrets["terrmap"], at.user = AUTH, ROLES, {"is_logged_in": True, **planner}
    at.run()
    at.selectbox(key="sc_plan_pick").set_value(copy.plan_id).run()
    next(b for b in at.button if b.label == "Publish").click().run()
    assert not at.exception
    assert get_plan(demo_store).plan_id == copy.plan_id
    events = plan_events(demo_store, copy.plan_id)
    assert events[["author", "what"]].values.tolist() == [["pat@corp.example", "Published Copy to publish."]]
    shown = [d.value for d in at.dataframe if "what" in d.value.columns]  # the history's "Other changes"
    assert shown and shown[0][["author", "what"]].values.tolist()[0] == ["pat@corp.example", "Published Copy to publish."]


def test_a_leader_sees_the_team_but_only_the_admin_changes_the_roster(monkeypatch, demo_store):
    """The roster's e-mails say who signs in as which rep: a leader (or planner) cannot change them."""
    roles = {"roles": {"lee@corp.example": "leader", "ann@corp.example": "admin"}}
    at = _app(monkeypatch, demo_store, script="pages/team.py", user={"email": "lee@corp.example"}, roles=roles)
    assert not at.exception and len(at.metric) == 4
    assert next(b for b in at.button if b.label == "Save changes").disabled
    at = _app(monkeypatch, demo_store, script="pages/team.py", user={"email": "ann@corp.example"}, roles=roles)
    assert not at.exception
    save = next(b for b in at.button if b.label == "Save changes")
    assert save.disabled  # nothing edited yet
    assert "e-mails decide" not in (save.help or "")


def test_settings_that_mean_sign_in_but_cannot_give_it_close_the_app(monkeypatch, demo_store, tmp_path):
    """Roles without [auth], or a secrets file that does not parse: every page stops, nobody is let in as the
    one person at the machine."""
    monkeypatch.setenv("TERRMAP_DB", str(demo_store.path))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.secrets["terrmap"] = ROLES
    at.run()
    assert not at.exception and "no [auth] table" in at.error[0].value and not at.metric

    from streamlit import config
    from streamlit.runtime.secrets import secrets_singleton

    broken = tmp_path / "secrets.toml"
    broken.write_text("[auth\nredirect_uri = ")
    saved = config.get_option("secrets.files")
    config.set_option("secrets.files", [str(broken)])
    secrets_singleton._reset()
    try:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90).run()
        assert not at.exception and "cannot be read" in at.error[0].value and not at.metric
    finally:
        config.set_option("secrets.files", saved)
        secrets_singleton._reset()
