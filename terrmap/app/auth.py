"""Sign-in: the viewer of this session (Streamlit's ``st.login``/``st.user``), the sign-in and no-access screens,
the sidebar's "signed in as", and who a saved change is recorded as. The rules are :mod:`terrmap.access`'s.

An identity provider is configured when ``.streamlit/secrets.toml`` (or a file of Streamlit's
``secrets.files`` option) has an ``[auth]`` table; without one every visitor is :data:`terrmap.access.LOCAL`
(terrmap as one person's tool on one machine, served on 127.0.0.1 only: see terrmap/serve.py).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from terrmap.access import LOCAL, RoleConfig, Viewer, rep_ids_by_email, resolve_viewer
from terrmap.app.html_safe import md
from terrmap.data.alignments import rep_directory
from terrmap.data.store import Store

SETTINGS = "terrmap"  # the table of secrets.toml that gives roles (see README: "Sign-in and roles")


def configured() -> bool:
    """Is an identity provider configured (an ``[auth]`` table among the secrets)? Raises ValueError for
    settings that mean sign-in but cannot give it (a secrets file that does not parse; roles without
    ``[auth]``): they must close the app, not open it to everybody."""
    if not st.secrets.load_if_toml_exists():
        unreadable = [p for p in st.get_option("secrets.files") or [] if Path(p).exists()]
        if unreadable:
            raise ValueError(f"{unreadable[0]} cannot be read (the server's log says why)")
        return False
    if "auth" not in st.secrets and SETTINGS in st.secrets:
        raise ValueError(f"[{SETTINGS}] gives roles, but there is no [auth] table to sign in with")
    return "auth" in st.secrets


def role_config() -> RoleConfig:
    """The ``[terrmap]`` table of the secrets (raises ValueError when it is malformed)."""
    settings = st.secrets.get(SETTINGS, {})
    return RoleConfig.from_mapping(settings.to_dict() if hasattr(settings, "to_dict") else dict(settings))


def viewer(s: Store) -> Viewer | None:
    """Who is looking: :data:`LOCAL` without a provider; None while nobody is signed in; else the signed-in
    person with the role the configuration gives them (role None: none)."""
    if not configured():
        return LOCAL
    if not st.user.get("is_logged_in"):
        return None
    claims = st.user.to_dict()
    rep_emails = rep_ids_by_email((rep_id, email) for rep_id, _, email in rep_directory(s))
    return resolve_viewer(claims, role_config(), rep_emails)


def sign_in_screen() -> None:
    """What a visitor sees before signing in (a page of its own in app.py's navigation)."""
    st.title("terrmap · territory planning")
    st.write("Sign in to see your territories.")
    if st.button("Sign in", type="primary", icon=":material/login:", key="tm_sign_in"):
        st.login()


def no_access_screen(who: Viewer) -> None:
    """Signed in, but the configuration gives this person no role."""
    st.title("No access")
    st.warning(who.reason or "This account has no role in terrmap.", icon=":material/block:")
    if st.button("Sign out", icon=":material/logout:", key="tm_sign_out_refused"):
        st.logout()


def require_viewer(s: Store) -> Viewer:
    """The viewer of this run, or stop the page with the sign-in (or no-access) screen. A misconfigured role
    table stops every page: no guess at who may see what."""
    try:
        who = viewer(s)
    except ValueError as exc:
        st.error(f"The sign-in settings are wrong: {exc}. See the README, \"Sign-in and roles\".")
        st.stop()
    if who is None:
        sign_in_screen()
        st.stop()
    if who.role is None:
        no_access_screen(who)
        st.stop()
    return who


def app_pages(s: Store, sections: dict[str, list[tuple[str, str, str]]], default: str = "home"
              ) -> tuple[Viewer | None, dict[str, list[st.Page]]]:
    """app.py's navigation for this viewer: of ``sections`` ({section: [(file, title, url path)]}) the pages
    the viewer may open (:meth:`Viewer.may_open`), ``default`` first if among them; before sign-in, or for a
    person given no role, one screen saying so. Returns (the viewer or None, the pages)."""
    urls = [url for entries in sections.values() for _, _, url in entries]

    def only(screen, title: str) -> dict[str, list[st.Page]]:
        # One screen, at "/" and at every page's URL: a bookmark (/rep?rep=R07) shows it, not "page not found".
        return {"": [st.Page(screen, title=title, url_path="start", default=True),
                     *(st.Page(screen, title=title, url_path=url, visibility="hidden") for url in urls)]}

    try:
        who = viewer(s)
    except ValueError:  # a malformed role table: the one screen (require_viewer) says what is wrong
        return None, only(lambda: require_viewer(s), "Sign-in settings")
    if who is None:
        return who, only(sign_in_screen, "Sign in")
    if who.role is None:
        return who, only(lambda: no_access_screen(who), "No access")
    allowed = {section: [e for e in entries if who.may_open(e[2])] for section, entries in sections.items()}
    pages = {section: [st.Page(file, title=title, url_path=url, default=url == default)
                       for file, title, url in entries]
             for section, entries in allowed.items() if entries}
    if not any(url == default for entries in allowed.values() for _, _, url in entries):
        # The default page has no URL of its own (it is "/"): a rep's bookmark /rep?rep=R07 would be "not
        # found". "/" leads on to the first page instead (with the query: "/?rep=R07"), which keeps its URL.
        section, first = next(iter(pages.items()))
        target = first[0]
        pages[section] = [st.Page(lambda: st.switch_page(target, query_params=st.query_params.to_dict()),
                                  title=target.title, url_path="start", default=True, visibility="hidden"),
                          *first]
    return who, pages


def sidebar(who: Viewer) -> None:
    """Who is signed in, and the way out (nothing without a provider)."""
    if not who.signed_in:
        return
    with st.sidebar:
        st.caption(f"Signed in as **{md(who.label)}**")
        if st.button("Sign out", icon=":material/logout:", key="tm_sign_out", width="stretch"):
            st.logout()


def author_box(container, who: Viewer, key: str, placeholder: str, help_text: str) -> None:
    """Where the change log's name comes from: a "Your name" box without sign-in, the signed-in person with it."""
    if who.signed_in:
        container.caption(f"Saved as **{md(who.author())}**", help=help_text)
    else:
        container.text_input("Your name", key=key, placeholder=placeholder, help=help_text)


def author(who: Viewer, key: str) -> str | None:
    """Who a saved change is recorded as: the signed-in person, else the "Your name" box ``key``."""
    return who.author(st.session_state.get(key))
