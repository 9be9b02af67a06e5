"""Who may do what: roles, the signed-in viewer, and the rules every page applies (no Streamlit here).

terrmap without an identity provider is one person on one machine: :data:`LOCAL`, who may do everything. With
a provider (Streamlit's ``st.login``, see the README), a person signs in and their ID token's claims are mapped
to one :class:`Role` by a :class:`RoleConfig` (the ``[terrmap]`` table of ``.streamlit/secrets.toml``):

- **admin**: everything, the data pages too (import leads, train the scoring model);
- **planner**: sees everything; edits, optimizes, publishes plans (and their pins, overlays, hierarchy);
- **leader**: sees everything, changes nothing;
- **rep**: their own rep view only (their accounts, their territory, the published plan), nothing of other reps:
  not by URL, not by export, not by lead lookup.

Resolution, first match wins (:func:`resolve_viewer`): the e-mail listed in ``roles``; a value of the
``role_claim`` claim listed in ``claim_roles`` (the strongest if several); a rep of the ``reps`` table with that
e-mail (a rep); a ``"*@domain"`` entry of ``roles``; ``unlisted`` (default: no access). A rep's ``rep_id`` is the
one given (``"rep:R07"``) or the rep whose e-mail it is. An e-mail the provider marks unverified
(``email_verified = false``) counts for nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    PLANNER = "planner"
    LEADER = "leader"
    REP = "rep"


class Action(StrEnum):
    VIEW_ALL = "view all"  # every rep and territory: the overview, map, scenarios, structure and model pages
    EDIT = "edit"  # change plans: editor, optimizer, scenarios (clone, rename, restore, delete), pins, overlays
    PUBLISH = "publish"  # make a plan the published one
    MANAGE_DATA = "manage data"  # import leads and the roster, train and score the model


GRANTS: dict[Role, frozenset[Action]] = {
    Role.ADMIN: frozenset(Action),
    Role.PLANNER: frozenset({Action.VIEW_ALL, Action.EDIT, Action.PUBLISH}),
    Role.LEADER: frozenset({Action.VIEW_ALL}),
    Role.REP: frozenset(),
}
STRENGTH = [Role.ADMIN, Role.PLANNER, Role.LEADER, Role.REP]  # strongest first

# The app's pages by URL path (app.py) and what opening one takes; None: every role (the rep view, which a rep
# sees pinned to their own rep).
PAGE_ACTIONS: dict[str, Action | None] = {
    "home": Action.VIEW_ALL,
    "map": Action.VIEW_ALL,
    "editor": Action.EDIT,
    "optimizer": Action.EDIT,
    "scenarios": Action.VIEW_ALL,
    "rep": None,
    "structure": Action.VIEW_ALL,
    "team": Action.VIEW_ALL,  # the roster: its e-mails map people to reps, so only the admin changes it
    "model": Action.VIEW_ALL,
    "import": Action.MANAGE_DATA,
}


@dataclass(frozen=True)
class Viewer:
    """Who is looking: their role (None: signed in but given no role), e-mail, name and, for a rep, rep id."""

    role: Role | None
    email: str | None = None
    name: str | None = None
    rep_id: str | None = None
    signed_in: bool = False
    reason: str | None = None  # why there is no role (shown to the person)

    def can(self, action: Action) -> bool:
        return self.role is not None and action in GRANTS[self.role]

    @property
    def can_view_all(self) -> bool:
        return self.can(Action.VIEW_ALL)

    @property
    def can_edit(self) -> bool:
        return self.can(Action.EDIT)

    @property
    def can_publish(self) -> bool:
        return self.can(Action.PUBLISH)

    @property
    def can_manage_data(self) -> bool:
        return self.can(Action.MANAGE_DATA)

    def can_see_rep(self, rep_id: str | None) -> bool:
        """May this viewer see rep ``rep_id``'s view, accounts and territory?"""
        if self.can_view_all:
            return True
        return self.role is Role.REP and rep_id is not None and self.rep_id is not None and rep_id == self.rep_id

    def may_open(self, page: str) -> bool:
        """May this viewer open the page at URL path ``page``? (A page :data:`PAGE_ACTIONS` does not know: the
        admin only, who is also the one person of an app without sign-in.)"""
        if self.role is Role.ADMIN:
            return True
        if self.role is None or page not in PAGE_ACTIONS:
            return False
        needed = PAGE_ACTIONS[page]
        if self.role is Role.REP:
            return needed is None and self.rep_id is not None
        return needed is None or self.can(needed)

    @property
    def sees_only_published(self) -> bool:
        """A rep sees the published plan only (drafts are the planners')."""
        return not self.can_view_all

    def author(self, typed: str | None = None) -> str | None:
        """Who a saved change is recorded as: the signed-in person (e-mail, else name), else the name typed in
        (one person on one machine)."""
        if self.signed_in:
            return self.email or self.name
        return (typed or "").strip() or None

    @property
    def label(self) -> str:
        """"Name (e-mail) · role" for the sidebar."""
        who = self.name or self.email or "?"
        if self.name and self.email and self.name != self.email:
            who = f"{self.name} ({self.email})"
        role = self.role.value if self.role else "no access"
        return f"{who} · {role}" + (f" {self.rep_id}" if self.role is Role.REP and self.rep_id else "")


LOCAL = Viewer(Role.ADMIN)  # no identity provider: the person at this machine may do everything


def parse_role(spec: str) -> tuple[Role, str | None]:
    """``"planner"`` → (planner, None); ``"rep:R07"`` → (rep, "R07"). Raises ValueError for anything else."""
    text = str(spec).strip()
    name, _, rep_id = text.partition(":")
    try:
        role = Role(name.strip().lower())
    except ValueError:
        raise ValueError(f"unknown role {text!r}: use one of {', '.join(r.value for r in Role)} "
                         "(a rep may name their rep id: \"rep:R07\")") from None
    rep_id = rep_id.strip() or None
    if rep_id is not None and role is not Role.REP:
        raise ValueError(f"{text!r}: only the rep role takes a rep id")
    return role, rep_id


@dataclass(frozen=True)
class RoleConfig:
    """The ``[terrmap]`` settings of secrets.toml that give roles (see the module's doc)."""

    roles: Mapping[str, tuple[Role, str | None]] = field(default_factory=dict)  # e-mail or "*@domain"
    role_claim: str | None = None
    claim_roles: Mapping[str, tuple[Role, str | None]] = field(default_factory=dict)
    unlisted: tuple[Role, str | None] | None = None
    reps_by_email: bool = True

    @classmethod
    def from_mapping(cls, settings: Mapping | None) -> RoleConfig:
        """From the ``[terrmap]`` table (a dict); raises ValueError naming what is wrong."""
        settings = dict(settings or {})
        known = {"roles", "role_claim", "claim_roles", "unlisted", "reps_by_email"}
        if unknown := sorted(set(settings) - known):
            raise ValueError(f"[terrmap] has unknown setting(s) {', '.join(unknown)}: known are {', '.join(sorted(known))}")
        unlisted = str(settings.get("unlisted", "none")).strip()
        return cls(
            roles={str(k).strip().lower(): parse_role(v) for k, v in dict(settings.get("roles") or {}).items()},
            role_claim=(str(settings["role_claim"]).strip() or None) if settings.get("role_claim") else None,
            claim_roles={str(k): parse_role(v) for k, v in dict(settings.get("claim_roles") or {}).items()},
            unlisted=None if unlisted.lower() in ("", "none") else parse_role(unlisted),
            reps_by_email=bool(settings.get("reps_by_email", True)),
        )


def rep_ids_by_email(reps: Iterable[tuple[str, str | None]]) -> dict[str, str]:
    """e-mail (lower case) → rep id from (rep_id, email) rows; an e-mail that two reps share names neither."""
    seen: dict[str, set[str]] = {}
    for rep_id, email in reps:
        if isinstance(email, str) and email.strip():
            seen.setdefault(email.strip().lower(), set()).add(str(rep_id))
    return {e: next(iter(ids)) for e, ids in seen.items() if len(ids) == 1}


def _claim_values(claims: Mapping, name: str) -> list[str]:
    value = claims.get(name)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple, set)):
        return [str(v) for v in value]
    return [str(value)]


def verified_email(claims: Mapping) -> str | None:
    """The claims' e-mail in lower case; None without one or when the provider says it is not verified."""
    email = claims.get("email")
    unverified = claims.get("email_verified") in (False, "false", "False")
    if not isinstance(email, str) or not email.strip() or unverified:
        return None
    return email.strip().lower()


def resolve_viewer(claims: Mapping, config: RoleConfig, rep_emails: Mapping[str, str] | None = None) -> Viewer:
    """The signed-in person of ID-token ``claims`` as a :class:`Viewer` (role None, with the reason, when the
    configuration gives them none). ``rep_emails``: e-mail (lower case) → rep id, from the ``reps`` table."""
    rep_emails = rep_emails or {}
    email = verified_email(claims)
    name = claims.get("name") if isinstance(claims.get("name"), str) else None
    base = Viewer(None, email=email, name=name or email or (str(claims.get("sub")) if claims.get("sub") else None),
                  signed_in=True)

    found: tuple[Role, str | None] | None = None
    if email is not None and email in config.roles:
        found = config.roles[email]
    if found is None and config.role_claim:
        hits = [config.claim_roles[v] for v in _claim_values(claims, config.role_claim) if v in config.claim_roles]
        if hits:
            found = min(hits, key=lambda h: STRENGTH.index(h[0]))
    if found is None and email is not None and config.reps_by_email and email in rep_emails:
        found = (Role.REP, rep_emails[email])
    if found is None and email is not None and "@" in email:
        found = config.roles.get("*@" + email.rsplit("@", 1)[1])
    if found is None:
        found = config.unlisted
    if found is None:
        who = email or base.name or "this account"
        return replace(base, reason=f"{who} has no role in terrmap: ask an admin to add it to the roles.")

    role, rep_id = found
    if role is Role.REP:
        rep_id = rep_id or (rep_emails.get(email) if email else None)
        if rep_id is None:
            return replace(base, reason=f"{email or base.name} is a rep, but no rep of the database has this e-mail "
                                        "(or the roles do not name their rep id).")
    return replace(base, role=role, rep_id=rep_id if role is Role.REP else None)


# -- what a viewer may see ------------------------------------------------------------------------------------

NOT_YOURS = "not in your territory"


def lookup_answer_for(viewer: Viewer, answer: dict) -> dict:
    """A territory lookup's answer (:func:`terrmap.io.assign.lookup`) as ``viewer`` may see it: a rep learns that
    a place owned by another rep is not theirs, never whose it is (territory, rep, hierarchy left out)."""
    if viewer.can_view_all or (viewer.role is Role.REP and answer.get("reason") is None
                               and answer.get("rep_id") is not None and viewer.can_see_rep(answer.get("rep_id"))):
        return answer
    if viewer.role is not Role.REP:
        raise PermissionError("no role: no lookups")
    return {**answer, "territory": None, "territory_id": None, "rep_id": None, "rep_name": None, "hierarchy": [],
            "path": None, "reason": answer.get("reason") if answer.get("region") is None else NOT_YOURS}


def rep_choice(viewer: Viewer, requested: str | None, available: Iterable[str]) -> tuple[list[str], str | None]:
    """The reps the rep view offers ``viewer`` and the one it opens on for ``?rep=requested``: everyone for those
    who see all, else only their own. Raises PermissionError when a rep asks for another rep."""
    available = list(available)
    if viewer.can_view_all:
        return available, requested if requested in available else None
    if viewer.role is not Role.REP or viewer.rep_id is None:
        raise PermissionError("no role: no rep view")
    if requested is not None and requested != viewer.rep_id:
        raise PermissionError(f"You are signed in as rep {viewer.rep_id}: you can open only your own rep view")
    own = [r for r in available if r == viewer.rep_id]
    return own, own[0] if own else None
