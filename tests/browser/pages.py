"""What the browser tests ask of a page, in the user's terms."""

from __future__ import annotations

from typing import Any

# A request the page's own script could send: the CSRF token the page embeds (for htmx) and
# the session cookie, i.e. everything a user tampering from the browser's console has.
_FORGE = """async ([path, fields]) => {
  const headers = JSON.parse(document.body.getAttribute("hx-headers") || "{}");
  const response = await fetch(path, {
    method: "POST", body: new URLSearchParams(fields), headers: headers,
    credentials: "same-origin", redirect: "manual",
  });
  return response.status;
}"""


def forge_post(page: Any, path: str, fields: dict[str, str] | None = None) -> int:
    """POST `fields` to `path` from inside the logged-in page, bypassing its UI; the status.
    A redirect (an accepted action) reads as 0: fetch hides opaque redirects."""
    return page.evaluate(_FORGE, [path, fields or {}])


def post_forms(page: Any) -> list[str]:
    """The action of every POST form the user can submit (one with a submit button), apart
    from the header's log-out form."""
    actions = page.eval_on_selector_all("form", """forms => forms
        .filter(f => f.method === "post")
        .filter(f => Array.from(f.elements).some(e => e.type === "submit"))
        .map(f => f.getAttribute("action") || location.pathname)""")
    return [a for a in actions if not a.startswith("/accounts/logout")]


# Links that lead to an action's form (GET pages whose only purpose is to act).
_ACTION_LINKS = ("/edit-retry/", "/tasks/enqueue/", "/start/")


def action_controls(page: Any) -> list[str]:
    """Everything on the page that acts: POST forms (but log-out) and links to action forms."""
    links = page.eval_on_selector_all("a[href]", "links => links.map(a => a.getAttribute('href'))")
    return post_forms(page) + [h for h in links if any(part in h for part in _ACTION_LINKS)]
