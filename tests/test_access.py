"""Who may do what (terrmap.access): every role against every action and page, how a signed-in person gets a
role, and what a rep is shown of a lookup and of the rep view (their own, nothing of other reps)."""

from __future__ import annotations

import pytest

from terrmap.access import (
    LOCAL,
    NOT_YOURS,
    PAGE_ACTIONS,
    Action,
    Role,
    RoleConfig,
    Viewer,
    lookup_answer_for,
    parse_role,
    rep_choice,
    rep_ids_by_email,
    resolve_viewer,
)

ADMIN = Viewer(Role.ADMIN, email="ann@corp.example", signed_in=True)
PLANNER = Viewer(Role.PLANNER, email="pat@corp.example", signed_in=True)
LEADER = Viewer(Role.LEADER, email="lee@corp.example", signed_in=True)
REP = Viewer(Role.REP, email="rita@corp.example", rep_id="R07", signed_in=True)
NOBODY = Viewer(None, email="who@else.example", signed_in=True)

# role -> the actions it has (everything else it has not)
EXPECTED = {
    "admin": {Action.VIEW_ALL, Action.EDIT, Action.PUBLISH, Action.MANAGE_DATA},
    "planner": {Action.VIEW_ALL, Action.EDIT, Action.PUBLISH},
    "leader": {Action.VIEW_ALL},
    "rep": set(),
    "none": set(),
}
VIEWERS = {"admin": ADMIN, "planner": PLANNER, "leader": LEADER, "rep": REP, "none": NOBODY}
# role -> the pages (URL paths of app.py) it may open
PAGES = {
    "admin": set(PAGE_ACTIONS),
    "planner": set(PAGE_ACTIONS) - {"import"},
    "leader": {"home", "map", "scenarios", "rep", "structure", "team", "model"},
    "rep": {"rep"},
    "none": set(),
}


@pytest.mark.parametrize("role", list(VIEWERS))
@pytest.mark.parametrize("action", list(Action))
def test_every_role_has_exactly_its_actions(role, action):
    assert VIEWERS[role].can(action) == (action in EXPECTED[role])


@pytest.mark.parametrize("role", list(VIEWERS))
def test_every_role_opens_exactly_its_pages(role):
    who = VIEWERS[role]
    assert {p for p in PAGE_ACTIONS if who.may_open(p)} == PAGES[role]
    assert who.may_open("a-page-added-later") == (role == "admin")


def test_the_shorthands_match_the_actions():
    for who in VIEWERS.values():
        assert (who.can_view_all, who.can_edit, who.can_publish, who.can_manage_data) == (
            who.can(Action.VIEW_ALL), who.can(Action.EDIT), who.can(Action.PUBLISH), who.can(Action.MANAGE_DATA))


def test_without_sign_in_the_person_at_the_machine_may_do_everything():
    assert not LOCAL.signed_in
    assert all(LOCAL.can(a) for a in Action) and all(LOCAL.may_open(p) for p in PAGE_ACTIONS)
    assert LOCAL.can_see_rep("R01") and LOCAL.can_see_rep("R99")
    # the change log takes the name typed in ("Your name"), as before sign-in existed
    assert LOCAL.author("  Dana ") == "Dana" and LOCAL.author("") is None and LOCAL.author(None) is None


def test_a_signed_in_person_is_recorded_as_themselves_whatever_is_typed():
    assert PLANNER.author("Somebody else") == "pat@corp.example"
    assert Viewer(Role.PLANNER, name="Pat", signed_in=True).author("x") == "Pat"


def test_a_rep_sees_their_own_rep_only():
    assert REP.can_see_rep("R07")
    assert not REP.can_see_rep("R08") and not REP.can_see_rep(None)
    assert not Viewer(Role.REP, rep_id=None, signed_in=True).can_see_rep(None)
    assert not Viewer(Role.REP, rep_id=None, signed_in=True).may_open("rep")  # a rep without a rep id: nothing
    assert LEADER.can_see_rep("R08") and PLANNER.can_see_rep("R08") and not NOBODY.can_see_rep("R07")
    assert REP.sees_only_published and not LEADER.sees_only_published


def test_the_rep_view_offers_a_rep_only_themselves_and_refuses_another_reps_url():
    available = ["R01", "R07", "R08"]
    assert rep_choice(REP, None, available) == (["R07"], "R07")
    assert rep_choice(REP, "R07", available) == (["R07"], "R07")
    with pytest.raises(PermissionError, match="only your own"):
        rep_choice(REP, "R08", available)
    with pytest.raises(PermissionError):
        rep_choice(REP, "nobody", available)
    assert rep_choice(REP, None, ["R01"]) == ([], None)  # owns nothing in this plan
    with pytest.raises(PermissionError):
        rep_choice(NOBODY, None, available)
    for who in (LOCAL, ADMIN, PLANNER, LEADER):
        assert rep_choice(who, "R08", available) == (available, "R08")
        assert rep_choice(who, "nobody", available) == (available, None)
        assert rep_choice(who, None, available) == (available, None)


OWNED_BY_R08 = {"plan": "P", "layer": "zip", "query": {"zip": "75001"}, "region": "75001", "located_by": "zip",
                "territory": "Dallas North", "territory_id": 3, "rep_id": "R08", "rep_name": "Other Rep",
                "hierarchy": [{"name": "South"}], "path": "South / Dallas North", "reason": None}
OWNED_BY_R07 = {**OWNED_BY_R08, "territory": "Austin", "territory_id": 4, "rep_id": "R07", "rep_name": "Rita"}
UNKNOWN_ZIP = {**OWNED_BY_R08, "region": None, "territory": None, "territory_id": None, "rep_id": None,
               "rep_name": None, "hierarchy": [], "path": None, "reason": "unknown ZIP 00000"}


def test_a_lookup_tells_a_rep_only_whether_the_place_is_theirs():
    hidden = lookup_answer_for(REP, OWNED_BY_R08)
    assert hidden["reason"] == NOT_YOURS and hidden["region"] == "75001"
    assert "Other Rep" not in repr(hidden) and "R08" not in repr(hidden) and "Dallas" not in repr(hidden)
    assert "South" not in repr(hidden)
    assert lookup_answer_for(REP, OWNED_BY_R07) == OWNED_BY_R07
    assert lookup_answer_for(REP, UNKNOWN_ZIP)["reason"] == "unknown ZIP 00000"
    unassigned = {**OWNED_BY_R08, "territory": None, "rep_id": None, "rep_name": None, "reason": "no territory"}
    assert lookup_answer_for(REP, unassigned)["reason"] == NOT_YOURS
    for who in (LOCAL, ADMIN, PLANNER, LEADER):
        assert lookup_answer_for(who, OWNED_BY_R08) == OWNED_BY_R08
    with pytest.raises(PermissionError):
        lookup_answer_for(NOBODY, OWNED_BY_R08)


# -- getting a role ---------------------------------------------------------------------------------------------

CONFIG = RoleConfig.from_mapping({
    "roles": {"Ann@Corp.example": "admin", "pat@corp.example": "planner", "lee@corp.example": "leader",
              "rita@corp.example": "rep:R07", "*@partner.example": "leader"},
    "role_claim": "groups",
    "claim_roles": {"sales-ops": "planner", "exec": "leader", "field": "rep"},
})
REP_EMAILS = rep_ids_by_email([("R07", "rita@corp.example"), ("R09", "Rob@Corp.example"),
                               ("R10", "team@corp.example"), ("R11", "team@corp.example"), ("R12", None)])


def test_rep_emails_are_case_blind_and_a_shared_email_names_no_rep():
    assert REP_EMAILS == {"rita@corp.example": "R07", "rob@corp.example": "R09"}


@pytest.mark.parametrize(("claims", "role", "rep_id"), [
    ({"email": "ann@corp.example"}, Role.ADMIN, None),  # listed e-mail, any case
    ({"email": "PAT@corp.example", "name": "Pat"}, Role.PLANNER, None),
    ({"email": "lee@corp.example"}, Role.LEADER, None),
    ({"email": "rita@corp.example"}, Role.REP, "R07"),  # listed with a rep id
    ({"email": "rob@corp.example"}, Role.REP, "R09"),  # not listed: a rep of the reps table by e-mail
    ({"email": "x@corp.example", "groups": ["field"]}, None, None),  # a rep by claim, but no rep has the e-mail
    ({"email": "rob@corp.example", "groups": ["field"]}, Role.REP, "R09"),  # a rep by claim, id by e-mail
    ({"email": "x@corp.example", "groups": ["exec", "sales-ops"]}, Role.PLANNER, None),  # the strongest claim
    ({"email": "x@corp.example", "groups": "exec"}, Role.LEADER, None),  # a claim given as one string
    ({"email": "pat@corp.example", "groups": ["exec"]}, Role.PLANNER, None),  # the listed e-mail first
    ({"email": "rob@corp.example", "groups": ["sales-ops"]}, Role.PLANNER, None),  # a claim beats the reps table
    ({"email": "someone@partner.example"}, Role.LEADER, None),  # a whole domain
    ({"email": "stranger@else.example"}, None, None),  # unlisted: no access
    ({"email": "ann@corp.example", "email_verified": False}, None, None),  # unverified e-mail counts for nothing
    ({"sub": "abc"}, None, None),  # no e-mail at all
])
def test_a_signed_in_person_gets_the_role_the_configuration_gives(claims, role, rep_id):
    who = resolve_viewer(claims, CONFIG, REP_EMAILS)
    assert who.signed_in and (who.role, who.rep_id) == (role, rep_id)
    assert (who.reason is None) == (role is not None)


def test_the_unlisted_setting_gives_everybody_else_a_role():
    config = RoleConfig.from_mapping({"unlisted": "leader"})
    assert resolve_viewer({"email": "any@where.example"}, config).role is Role.LEADER
    # the reps table is asked first: a rep stays a rep
    assert resolve_viewer({"email": "rob@corp.example"}, config, REP_EMAILS).role is Role.REP
    assert RoleConfig.from_mapping({"unlisted": "Rep:R07"}).unlisted == (Role.REP, "R07")
    assert RoleConfig.from_mapping({"unlisted": "None"}).unlisted is None
    off = RoleConfig.from_mapping({"reps_by_email": False})
    assert resolve_viewer({"email": "rob@corp.example"}, off, REP_EMAILS).role is None


def test_the_viewer_keeps_name_and_email_for_the_sidebar():
    who = resolve_viewer({"email": "Pat@corp.example", "name": "Pat Planner"}, CONFIG)
    assert (who.email, who.name) == ("pat@corp.example", "Pat Planner")
    assert who.label == "Pat Planner (pat@corp.example) · planner"
    assert resolve_viewer({"email": "rita@corp.example"}, CONFIG).label == "rita@corp.example · rep R07"


def test_role_specs_and_malformed_settings_are_refused_with_a_reason():
    assert parse_role("Planner") == (Role.PLANNER, None)
    assert parse_role(" rep : R07 ") == (Role.REP, "R07")
    for bad in ("owner", "planner:R07", ""):
        with pytest.raises(ValueError):
            parse_role(bad)
    with pytest.raises(ValueError, match="unknown role"):
        RoleConfig.from_mapping({"roles": {"a@b.example": "boss"}})
    with pytest.raises(ValueError, match="unknown setting"):
        RoleConfig.from_mapping({"role": {"a@b.example": "admin"}})
    assert RoleConfig.from_mapping(None) == RoleConfig()


def test_every_page_of_the_app_has_a_rule_and_guards_itself_with_it():
    """app.py's navigation offers a page only to whom PAGE_ACTIONS lets open it; each page also stops for anyone
    else (``ui.require(Action.X)``), and the rep view pins a rep to their own rep (``access.rep_choice``)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    tree = ast.parse((root / "app.py").read_text())
    sections = next(ast.literal_eval(n.value) for n in tree.body
                    if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", None) == "SECTIONS")
    entries = [e for es in sections.values() for e in es]
    assert {url for _, _, url in entries} == set(PAGE_ACTIONS)
    for file, _, url in entries:
        text = (root / file).read_text()
        needed = PAGE_ACTIONS[url]
        if needed is None:
            assert "access.rep_choice(who" in text, file
        else:
            assert f"ui.require(Action.{needed.name})" in text, file
