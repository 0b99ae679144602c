"""Every staff page and API endpoint × every role × own and other agency's objects (issue 8).

The URLs come from the resolver, so a page or endpoint is covered the day it is added. A URL
whose arguments the matrix cannot fill, or an API endpoint it does not know to be public, fails
`test_the_matrix_knows_every_url` with its name: teach the matrix (FILL below), do not skip it.

Rules checked for every (URL, identity, side, method):
- no response is a server error;
- anonymous visitors (and API keys, which the staff area ignores) get the sign-in redirect from
  every staff page;
- staff of another agency get 403/404 (or 405) on agency A's objects;
- API endpoints outside PUBLIC_API refuse callers without a suitable key, and a key never reaches
  another key's or agency's objects;
- a response never carries the private markers of a side the identity is not entitled to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from agencies.models import Agency, Membership
from agencies.roles import OPERATORS_GROUP
from lists.models import Batch, CreditList, Source, Watchlist, Webhook, WebhookDelivery
from lists.services.cases import file_objection
from lists.services.evidence import add_evidence
from tests.factories import ListingFactory, MembershipFactory, UserFactory
from tests.portal.api_helpers import auth, make_key

pytestmark = pytest.mark.django_db

NAMESPACES = ("staff", "cases", "api")
# Staff pages anyone may open: signing in and out.
OPEN_STAFF = {"staff:login", "staff:logout"}
# API endpoints that serve public data to anyone (a key only raises the rate).
PUBLIC_API = {
    "api:root",
    "api:agency-list",
    "api:list-list",
    "api:measure-list",
    "api:listing-list",
    "api:subject-list",
    "api:subject-detail",
    "api:change-list",
    "api:export-list",
    "api:export-file",
    "api:schema",
    "api:docs",
}
# Public due-process pages: opening the forms for a published listing needs no account.
PUBLIC_CASES = {"cases:objection-new", "cases:repair-new", "cases:filed", "cases:track"}
DENIED = {401, 403, 404, 405}
# Actions only some roles of the agency may take (POST on the agency's own objects must be 403 otherwise).
ROLES_IN_A = {"uploader", "approver", "admin"}
ROLE_ONLY = {
    "staff:batch-publish": {"approver", "admin"},
    "staff:batch-reject": {"approver", "admin"},
    "staff:batch-rollback": {"approver", "admin"},
    "staff:case-decide": {"approver", "admin"},
    "staff:source-sync": {"admin"},
}
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@dataclass
class Side:
    """One agency's objects, and the strings that only those entitled to them may see."""

    agency: Agency
    credit_list: CreditList
    objects: dict[str, Any] = field(default_factory=dict)
    staff_markers: list[str] = field(default_factory=list)
    key_markers: list[str] = field(default_factory=list)


# (namespace:name prefix or full name, kwarg) -> which object of the side fills it.
FILL: dict[tuple[str, str], Callable[[Side], Any]] = {
    ("staff:batch-", "pk"): lambda s: s.objects["batch"].pk,
    ("staff:case-", "pk"): lambda s: s.objects["case"].pk,
    ("staff:case-", "evidence_id"): lambda s: s.objects["evidence"].pk,
    ("staff:source-", "pk"): lambda s: s.objects["source"].pk,
    ("staff:list-", "code"): lambda s: s.credit_list.code,
    ("cases:", "listing_id"): lambda s: s.objects["listing"].pk,
    ("cases:", "number"): lambda s: s.objects["case"].number,
    ("cases:", "evidence_id"): lambda s: s.objects["evidence"].pk,
    ("api:batch-", "code"): lambda s: s.credit_list.code,
    ("api:batch-", "pk"): lambda s: s.objects["batch"].pk,
    ("api:subject-detail", "pk"): lambda s: s.objects["listing"].subject_id,
    ("api:watchlist-", "pk"): lambda s: s.objects["watchlist"].pk,
    ("api:delivery-", "pk"): lambda s: s.objects["webhook"].pk,
    ("api:delivery-", "delivery_pk"): lambda s: s.objects["delivery"].pk,
    ("api:export-file", "scope"): lambda s: "all",
    ("api:export-file", "fmt"): lambda s: "csv",
}


def _walk(patterns: list[Any], namespace: str = "") -> Iterator[tuple[str, list[str]]]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            inner = ":".join(filter(None, [namespace, entry.namespace])) if entry.namespace else namespace
            yield from _walk(entry.url_patterns, inner)
        elif isinstance(entry, URLPattern) and entry.name and namespace in NAMESPACES:
            yield f"{namespace}:{entry.name}", sorted(getattr(entry.pattern, "converters", {}))


def matrix_urls() -> list[tuple[str, list[str]]]:
    """Return (namespaced name, URL keyword arguments) of every staff, case and API URL."""
    return sorted({(name, tuple(kwargs)) for name, kwargs in _walk(get_resolver().url_patterns)})  # type: ignore[misc]


def _filler(name: str, kwarg: str) -> Callable[[Side], Any] | None:
    for (prefix, arg), fill in FILL.items():
        if arg == kwarg and name.startswith(prefix):
            return fill
    return None


def test_the_matrix_knows_every_url():
    unknown = [
        f"{name}({kw})" for name, kwargs in matrix_urls() for kw in kwargs if _filler(name, kw) is None
    ]
    assert not unknown, f"the permission matrix cannot fill these URLs; add them to FILL: {unknown}"
    names = {name for name, _ in matrix_urls()}
    assert {"staff:dashboard", "staff:batch-publish", "api:screen", "api:batch-push"} <= names


def test_the_matrix_covers_staff_and_api():
    names = {name for name, _ in matrix_urls()}
    assert len([n for n in names if n.startswith("staff:")]) >= 15
    assert len([n for n in names if n.startswith("api:")]) >= 15


# --- the world: two agencies, their staff, keys and objects -------------------------------------


def _side(agency: Agency, credit_list: CreditList, tag: str, uploader: Any, key: Any) -> Side:
    side = Side(agency=agency, credit_list=credit_list)
    listing = ListingFactory(credit_list=credit_list)
    batch = Batch.objects.create(
        credit_list=credit_list,
        origin=Batch.Origin.UPLOAD,
        original_filename=f"private-batch-{tag}.csv",
        uploaded_by=uploader,
    )
    case = file_objection(
        listing=listing,
        applicant_name=f"申请人{tag}甲",
        applicant_email=f"{tag}@example.org",
        field="reason",
        grounds="x",
    ).case
    evidence = add_evidence(
        case=case, upload=SimpleUploadedFile("p.pdf", PDF, content_type="application/pdf")
    )
    source, _ = Source.objects.get_or_create(
        credit_list=credit_list, defaults={"url": "https://feed.example.org/x"}
    )
    watchlist = Watchlist.objects.create(api_key=key, name=f"private-watchlist-{tag}")
    webhook = Webhook.objects.create(
        api_key=key, watchlist=watchlist, url=f"https://hook-{tag}.example.org/in", secret="s" * 32
    )
    delivery = WebhookDelivery.objects.create(webhook=webhook, first_seq=0, last_seq=0, body="{}")
    side.objects.update(
        listing=listing, batch=batch, case=case, evidence=evidence, source=source,
        watchlist=watchlist, webhook=webhook, delivery=delivery,
    )  # fmt: skip
    side.staff_markers = [batch.original_filename, case.number, case.applicant_name]
    side.key_markers = [watchlist.name, webhook.url]
    return side


@dataclass
class Identity:
    name: str
    client: Client
    staff_of: set[str]  # agency codes whose staff data it may see ("*" for all)
    key_of: set[str]  # side tags whose key-owned objects it may see
    is_staff: bool = False
    has_key: bool = False


@pytest.fixture
def world(settings, tmp_path) -> tuple[dict[str, Side], list[Identity]]:  # type: ignore[no-untyped-def]
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.XY_API_ANON_PER_MINUTE = 1_000_000  # the matrix sends many anonymous API calls
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast factories
    a_list = CreditList.objects.get(code="TAX_MAJOR_VIOLATION")
    b_list = CreditList.objects.filter(is_public=True).exclude(agency=a_list.agency).order_by("code").first()
    assert b_list is not None
    identities: list[Identity] = [Identity("anonymous", Client(), set(), set())]
    members = {}
    for role in ("uploader", "approver", "admin"):
        members[role] = MembershipFactory(agency=a_list.agency, role=role).user
    other = MembershipFactory(agency=b_list.agency, role=Membership.Role.ADMIN).user
    operator = UserFactory()
    operator.groups.add(Group.objects.get_or_create(name=OPERATORS_GROUP)[0])
    key_a, secret_a = make_key(["push", "screen", "read"], agency=a_list.agency)
    key_b, secret_b = make_key(["push", "screen", "read"], agency=b_list.agency)
    sides = {
        "A": _side(a_list.agency, a_list, "A", members["uploader"], key_a),
        "B": _side(b_list.agency, b_list, "B", other, key_b),
    }
    for role, user in members.items():
        identities.append(_session(role, user, {a_list.agency.code}))
    identities.append(_session("other-agency-admin", other, {b_list.agency.code}))
    identities.append(_session("operator", operator, {"*"}))
    for name, scopes, agency, owns in [
        ("key-read", ["read"], None, set()),
        ("key-screen", ["screen"], None, set()),
        ("key-push-A", None, None, {"A"}),
        ("key-push-B", None, None, {"B"}),
        ("key-operator", ["operator"], None, set()),
    ]:
        secret = (
            secret_a
            if name == "key-push-A"
            else secret_b
            if name == "key-push-B"
            else make_key(scopes, agency=agency)[1]
        )
        # An agency's push key is that agency's own: it may see the agency's batches.
        agency_codes = {sides[tag].agency.code for tag in owns}
        identities.append(Identity(name, Client(**auth(secret)), agency_codes, owns, has_key=True))
    return sides, identities


def _session(name: str, user: Any, agencies: set[str]) -> Identity:
    client = Client()
    client.force_login(user)
    return Identity(name, client, agencies, set(), is_staff=True)


def _body(response: Any) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode("utf-8", "replace")
    return response.content.decode("utf-8", "replace")


def _entitled_to_staff_data(identity: Identity, side: Side) -> bool:
    return "*" in identity.staff_of or side.agency.code in identity.staff_of


def _check(name: str, identity: Identity, side_tag: str, side: Side, method: str, response: Any) -> list[str]:
    """Return what is wrong with one response (empty when it follows the rules)."""
    status, problems = response.status_code, []
    where = f"{method} {name} as {identity.name} on {side_tag}'s objects → {status}"
    if status >= 500:
        problems.append(f"{where}: server error")
    namespace = name.split(":")[0]
    if namespace == "staff" and name not in OPEN_STAFF and not identity.is_staff:
        login = reverse(django_settings.LOGIN_URL)
        if not (status in DENIED or (status == 302 and response["Location"].startswith(login))):
            problems.append(f"{where}: anonymous/keyed caller not sent to sign in")
    if (
        namespace == "staff"
        and identity.is_staff
        and side_tag != "-"
        and not _entitled_to_staff_data(identity, side)
    ) and status not in DENIED:
        problems.append(f"{where}: staff of another agency reached the object")
    roles = ROLE_ONLY.get(name)
    own = side_tag == "A" and identity.name in ROLES_IN_A
    if roles and own and identity.name not in roles and method == "POST" and status != 403:
        problems.append(f"{where}: a role without the right was not refused")
    if namespace == "cases" and name not in PUBLIC_CASES and status == 200:
        problems.append(f"{where}: case page without the access code")
    if namespace == "api" and name not in PUBLIC_API:
        if not identity.has_key and status not in DENIED:
            problems.append(f"{where}: keyed endpoint answered without a key")
        if side_tag != "-" and side_tag not in identity.key_of and status not in DENIED:
            problems.append(f"{where}: key reached another key's or agency's object")
    return problems


def _leaks(
    name: str, identity: Identity, sides: dict[str, Side], method: str, status: int, body: str
) -> list[str]:
    problems = []
    for tag, side in sides.items():
        private = [] if _entitled_to_staff_data(identity, side) else side.staff_markers
        private = private + ([] if tag in identity.key_of else side.key_markers)
        problems += [
            f"{method} {name} as {identity.name} → {status}: shows {m!r} of {tag}"
            for m in private
            if m in body
        ]
    return problems


@pytest.mark.parametrize(("name", "kwargs"), matrix_urls(), ids=[n for n, _ in matrix_urls()])
def test_permission_matrix(world, name, kwargs):
    sides, identities = world
    fills = [_filler(name, kw) for kw in kwargs]
    if None in fills:
        pytest.fail(f"{name}: the matrix cannot fill {kwargs} (see test_the_matrix_knows_every_url)")
    targets = {
        tag: reverse(name, kwargs={kw: f(side) for kw, f in zip(kwargs, fills, strict=True)})
        for tag, side in sides.items()
    }
    if not kwargs:
        targets = {"-": targets["A"]}
    problems: list[str] = []
    # Denied callers first: an allowed POST (a publish, a decision) may change the objects.
    a_code = sides["A"].agency.code
    for identity in sorted(identities, key=lambda i: bool({a_code, "*"} & i.staff_of or "A" in i.key_of)):
        for tag, url in targets.items():
            side = sides.get(tag, sides["A"])
            for method in ("get", "post"):
                response = getattr(identity.client, method)(url)
                problems += _check(name, identity, tag, side, method.upper(), response)
                problems += _leaks(
                    name, identity, sides, method.upper(), response.status_code, _body(response)
                )
    assert not problems, "\n".join(problems)
