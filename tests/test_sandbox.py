"""The sandbox pins each API rule certsync relies on, over real HTTP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import httpx
import pytest

from certsync.sandbox import Fault, FaultConfig, MonotreeUser, Sandbox, SandboxState, Template

API = "/api/open/v1"


@pytest.fixture
def world(sandbox_state: SandboxState) -> SandboxState:
    sandbox_state.add_template(Template(12, "Food Safety", validity_months=12))
    for uid in range(501, 561):
        sandbox_state.add_user(MonotreeUser(uid, f"User {uid}", f"u{uid}@example.com"))
    return sandbox_state


@pytest.fixture
def mono(world: SandboxState) -> Iterator[httpx.Client]:
    with (
        Sandbox(world) as running,
        httpx.Client(
            base_url=running.monotree_url,
            headers={"Authorization": f"Bearer {world.monotree_token}"},
        ) as client,
    ):
        yield client


def assign(client: httpx.Client, uid: int, on: str) -> httpx.Response:
    return client.post(
        f"{API}/certificates/assign",
        json={
            "assignments": [{"certificate_id": 12, "users": [{"user_id": uid, "completed_at": on}]}]
        },
    )


def holder(client: httpx.Client, uid: int) -> dict[str, object]:
    items = client.get(f"{API}/certificates/12/users", params={"per_page": 50}).json()["data"]
    state: dict[str, object] = next(h for h in items if h["id"] == uid)["user_state"]
    return state


def test_assign_issues_as_of_completed_at_with_expiry_from_the_template(mono: httpx.Client) -> None:
    """assign issues at completed_at; expires_at is validity_months later."""
    assert assign(mono, 501, "2026-06-01").status_code == 204
    state = holder(mono, 501)
    assert state["issued_at"] == "2026-06-01T00:00:00+00:00"
    assert state["expires_at"] == "2027-06-01T00:00:00+00:00"
    assert state["is_expired"] is False


def test_assign_skips_an_active_holder(mono: httpx.Client) -> None:
    """A second assign to an active holder changes nothing."""
    assign(mono, 501, "2026-06-01")
    assign(mono, 501, "2026-09-01")
    assert holder(mono, 501)["issued_at"] == "2026-06-01T00:00:00+00:00"


def test_reset_with_expire_makes_is_expired_true_and_reassign_works(
    mono: httpx.Client, world: SandboxState
) -> None:
    """reset with expire pulls the expiry to now; the user can then be assigned again."""
    assign(mono, 501, "2026-06-01")
    assert (
        mono.post(
            f"{API}/certificates/12/reset", json={"user_ids": [501], "expire": True, "notify": True}
        ).status_code
        == 204
    )
    assert holder(mono, 501)["is_expired"] is True
    assert world.notified[501] == 1
    assign(mono, 501, "2026-09-01")
    state = holder(mono, 501)
    assert state["is_expired"] is False and state["issued_at"] == "2026-09-01T00:00:00+00:00"
    assert len(state["history"]) == 1  # type: ignore[arg-type]


def test_reset_without_expire_or_user_ids(mono: httpx.Client) -> None:
    """Without expire the certificate stays valid; without user_ids every holder is targeted."""
    assign(mono, 501, "2026-06-01")
    assign(mono, 502, "2026-06-01")
    mono.post(f"{API}/certificates/12/reset", json={"expire": False})
    assert holder(mono, 501)["is_expired"] is False
    mono.post(f"{API}/certificates/12/reset", json={"expire": True})
    assert holder(mono, 501)["is_expired"] is True and holder(mono, 502)["is_expired"] is True


def test_assign_to_an_unknown_user_is_a_422_for_the_whole_body(mono: httpx.Client) -> None:
    """Validation is all or nothing, Laravel style, naming the offending entry."""
    r = mono.post(
        f"{API}/certificates/assign",
        json={
            "assignments": [
                {
                    "certificate_id": 12,
                    "users": [
                        {"user_id": 501, "completed_at": "2026-06-01"},
                        {"user_id": 9999, "completed_at": "2026-06-01"},
                    ],
                }
            ]
        },
    )
    assert r.status_code == 422
    assert "assignments.0.users.1.user_id" in r.json()["errors"]
    assert mono.get(f"{API}/certificates/12/users").json()["data"] == []


def test_pagination_caps_per_page_at_50_and_links_next(mono: httpx.Client) -> None:
    """60 holders: per_page=100 is capped at 50, links.next leads to page 2, the last has next null."""
    for uid in range(501, 561):
        assign(mono, uid, "2026-06-01")
    first = mono.get(f"{API}/certificates/12/users", params={"per_page": 100}).json()
    assert (
        len(first["data"]) == 50
        and first["meta"]["last_page"] == 2
        and first["meta"]["total"] == 60
    )
    second = mono.get(first["links"]["next"]).json()
    assert len(second["data"]) == 10 and second["links"]["next"] is None


def test_soft_delete_hides_the_template(mono: httpx.Client) -> None:
    """DELETE answers 204; the template is then 404 and gone from the list."""
    assert mono.delete(f"{API}/certificates/12").status_code == 204
    assert mono.get(f"{API}/certificates/12").status_code == 404
    assert mono.get(f"{API}/certificates").json()["data"] == []


def test_users_list_hides_deactivated_and_pending(mono: httpx.Client, world: SandboxState) -> None:
    """Only registered, active users are listed."""
    world.update_user(501, active=False)
    world.update_user(502, registered=False)
    ids = {u["id"] for u in mono.get(f"{API}/users", params={"per_page": 50}).json()["data"]}
    assert 501 not in ids and 502 not in ids and 503 in ids


def test_holders_follow_issues_and_user_changes(mono: httpx.Client, world: SandboxState) -> None:
    """The holder list is cached between pages; a new issue or a deactivated user still shows at once."""

    def listed() -> list[int]:
        items = mono.get(f"{API}/certificates/12/users", params={"per_page": 50}).json()["data"]
        return [h["id"] for h in items]

    assign(mono, 503, "2026-06-01")
    assign(mono, 501, "2026-06-01")
    assert listed() == [501, 503]
    world.issue(12, 502, date(2026, 6, 2))
    assert listed() == [501, 502, 503]
    world.update_user(501, active=False)
    assert listed() == [502, 503]
    world.update_user(501, active=True)
    assert listed() == [501, 502, 503]


def test_wrong_token_is_401_and_missing_scope_is_403(world: SandboxState) -> None:
    """A wrong token gets 401; a token without write:certificates gets 403 on assign."""
    world.tokens["monotree"]["mono_read_only"] = frozenset({"read:certificates"})
    with Sandbox(world) as running:
        assert (
            httpx.get(
                f"{running.monotree_url}{API}/certificates",
                headers={"Authorization": "Bearer nope"},
            ).status_code
            == 401
        )
        read_only = {"Authorization": "Bearer mono_read_only"}
        assert (
            httpx.get(f"{running.monotree_url}{API}/certificates", headers=read_only).status_code
            == 200
        )
        assert (
            httpx.post(
                f"{running.monotree_url}{API}/certificates/assign", json={}, headers=read_only
            ).status_code
            == 403
        )
        assert httpx.get(f"{running.monotree_url}{API}/users", headers=read_only).status_code == 403
        assert (
            httpx.get(
                f"{running.natecosmic_url}/v1/certifications",
                headers={"Authorization": "Bearer nope"},
            ).status_code
            == 401
        )


def test_rate_limit_headers_and_429_with_retry_after() -> None:
    """Every answer carries X-RateLimit-*; past the limit, 429 with Retry-After."""
    state = SandboxState(rate_limit=3)
    with (
        Sandbox(state) as running,
        httpx.Client(
            base_url=running.monotree_url,
            headers={"Authorization": f"Bearer {state.monotree_token}"},
        ) as c,
    ):
        answers = [c.get(f"{API}/certificates") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert answers[0].headers["X-RateLimit-Limit"] == "3"
    assert int(answers[3].headers["Retry-After"]) >= 1
    assert answers[3].json() == {"message": "Too Many Attempts."}


def test_seeded_faults_repeat_exactly() -> None:
    """The same fault seed gives the same sequence of answers."""

    def statuses() -> list[int]:
        state = SandboxState(rate_limit=None, faults=FaultConfig(error_rate=0.5, seed=42))
        with Sandbox(state) as running:
            headers = {"Authorization": f"Bearer {state.natecosmic_token}"}
            return [
                httpx.get(
                    f"{running.natecosmic_url}/v1/certifications", headers=headers
                ).status_code
                for _ in range(12)
            ]

    first = statuses()
    assert first == statuses()
    assert 200 in first and any(s in (429, 500, 503) for s in first)


def test_a_dropped_connection_is_a_transport_error(
    sandbox: Sandbox, sandbox_state: SandboxState
) -> None:
    """A scripted drop breaks the connection mid-answer; the request count still sees it."""
    sandbox_state.script(Fault("GET /v1/certifications", "drop"))
    with pytest.raises(httpx.TransportError):
        httpx.get(
            f"{sandbox.natecosmic_url}/v1/certifications",
            headers={"Authorization": f"Bearer {sandbox_state.natecosmic_token}"},
        )
    assert sandbox_state.count("natecosmic", "GET") == 1


def test_generated_world_is_repeatable(sandbox_state: SandboxState) -> None:
    """The generator gives the same records for the same seed and day."""
    from certsync.sandbox import generate

    other = SandboxState()
    a = generate(sandbox_state, users=10, types=3, seed=5, today=date(2026, 11, 1))
    b = generate(other, users=10, types=3, seed=5, today=date(2026, 11, 1))
    assert sandbox_state.records == other.records and a.mapping_toml == b.mapping_toml
