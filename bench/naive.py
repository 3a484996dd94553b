"""The naive peer: what a hand-written cron script would do.

It pulls Natecosmic, then for every mapped user reads that user's certificates
one request at a time, and assigns each missing certificate with a request of its
own (one user, one certificate). It never revokes. It is here only to be
measured against certsync on the same data.
"""

from __future__ import annotations

from datetime import date

import httpx

from certsync.sandbox import Sandbox


def run_naive(sandbox: Sandbox, types: dict[str, int], users: dict[str, int], today: date) -> int:
    """Bring Monotree up to date the naive way; return the number of requests made."""
    requests = 0
    n_auth = {"Authorization": f"Bearer {sandbox.state.natecosmic_token}"}
    m_auth = {"Authorization": f"Bearer {sandbox.state.monotree_token}"}
    with httpx.Client(timeout=30) as http:
        records = http.get(f"{sandbox.natecosmic_url}/v1/certifications", headers=n_auth).json()[
            "data"
        ]
        requests += 1
        wanted: dict[int, dict[int, str]] = {}
        for r in records:
            expires = r.get("expires_on")
            if r["lifecycle_status"] != "active" or r["validity_status"] != "valid":
                continue
            if expires and date.fromisoformat(expires) < today:
                continue
            cert, user = types.get(r["certification_type_id"]), users.get(r["user_id"])
            if cert is None or user is None:
                continue
            wanted.setdefault(user, {})[cert] = max(
                r["issued_on"], wanted.get(user, {}).get(cert, "")
            )
        for user, certs in sorted(wanted.items()):
            held = http.get(
                f"{sandbox.monotree_url}/api/open/v1/users/{user}/certificates", headers=m_auth
            ).json()
            requests += 1
            active = {c["id"] for c in held["data"] if not c["is_expired"]}
            for cert, issued in sorted(certs.items()):
                if cert in active:
                    continue
                body = {
                    "assignments": [
                        {
                            "certificate_id": cert,
                            "users": [{"user_id": user, "completed_at": issued}],
                        }
                    ]
                }
                http.post(
                    f"{sandbox.monotree_url}/api/open/v1/certificates/assign",
                    json=body,
                    headers=m_auth,
                )
                requests += 1
    return requests
