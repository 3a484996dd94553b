"""`certsync demo`: the whole job against the built-in sandbox, in a temporary folder.

Three syncs: a first full one, one after an upstream change (a revocation, a
renewal, a new hire) and one that shows nothing is left to do; then a pending
hire accepts their Monotree invite and the webhook brings their certificate.
"""

from __future__ import annotations

import tempfile
from datetime import date, timedelta
from pathlib import Path
from typing import TextIO

from certsync.cli.demo_webhook import add_pending_hire, register_and_wait
from certsync.cli.exit_codes import EXIT_FAILED, EXIT_OK
from certsync.cli.render import render_table, requests_by_api
from certsync.engine.cycle import SyncOptions, SyncReport, open_clients, run_sync
from certsync.engine.report import Outcome
from certsync.redaction import Redactor
from certsync.sandbox import MonotreeUser, Sandbox, SandboxState, generate, make_record
from certsync.settings import Settings, load_settings
from certsync.store import open_store


def _settings(sandbox: Sandbox, folder: Path) -> Settings:
    return load_settings(
        natecosmic={"base_url": sandbox.natecosmic_url, "token": sandbox.state.natecosmic_token},
        monotree={"base_url": sandbox.monotree_url, "token": sandbox.state.monotree_token},
        database_url=f"sqlite:///{folder / 'certsync.db'}",
        mappings_file=folder / "mappings.toml",
        log_level="error",
    )


def _sync(
    sandbox: Sandbox, folder: Path, out: TextIO, title: str, redactor: Redactor
) -> SyncReport:
    settings = _settings(sandbox, folder)
    store = open_store(settings)
    try:
        with open_clients(settings, redactor=redactor) as clients:
            report = run_sync(settings, store, clients, SyncOptions())
    finally:
        store.close()
    out.write(f"\n=== {title} ===\n{render_table(report)}\n")
    return report


def run_demo(out: TextIO, redactor: Redactor, *, seed: int = 7) -> int:
    """Run the demo; return 0 when every sync converged as expected."""
    today = date.today()
    state = SandboxState()
    world = generate(
        state,
        users=12,
        types=3,
        seed=seed,
        today=today,
        email_every=4,
        unmapped_type=True,
        unmapped_user_every=6,
        inactive_share=0.0,
    )
    # Someone issued this one by hand in Monotree before certsync ran: it is not
    # certsync's to revoke, and the demo shows it is left alone.
    state.issue(world.template_ids[0], world.monotree_ids[5], today - timedelta(days=10))

    with tempfile.TemporaryDirectory(prefix="certsync-demo-") as tmp, Sandbox(state) as sandbox:
        folder = Path(tmp)
        (folder / "mappings.toml").write_text(world.mapping_toml, encoding="utf-8")
        out.write(
            f"sandbox: Natecosmic {sandbox.natecosmic_url}, Monotree {sandbox.monotree_url}\n"
            f"world: {len(world.user_ids)} users, {len(world.template_ids)} templates, "
            f"{len(state.records)} Natecosmic records; working folder {folder}\n"
        )
        first = _sync(sandbox, folder, out, "1. first sync (full: reads every holder)", redactor)

        with state.lock:
            records = state.records
            revoked = records[0]
            records[0] = {**revoked, "lifecycle_status": "revoked"}
            renewed = records[1]
            records[1] = {**renewed, "issued_on": today.isoformat(), "id": renewed["id"] + "-r"}
            hire_nc = "7d1c9a4e-hire-4b50-8888-000000000001"
            state.add_user(MonotreeUser(9001, "New Hire", "new.hire@example.com"))
            records.append(
                make_record(
                    state.rng,
                    user_id=hire_nc,
                    type_id=world.type_ids[0],
                    slug=world.type_slugs[0],
                    issued_on=today,
                    validity_months=12,
                )
            )
        with (folder / "mappings.toml").open("a", encoding="utf-8") as f:
            f.write(f'\n[[users]]\nnatecosmic = "{hire_nc}"\nmonotree = 9001\n')
        out.write(
            "\nupstream change: one certification revoked, one renewed today, "
            "one new hire certified today\n"
        )
        second = _sync(sandbox, folder, out, "2. after the change (incremental)", redactor)
        # Invited, certified in Natecosmic, not registered in Monotree yet: nothing to do.
        add_pending_hire(sandbox, world.type_ids[1], world.type_slugs[1], folder)
        third = _sync(sandbox, folder, out, "3. nothing changed (incremental)", redactor)
        registered = register_and_wait(_settings(sandbox, folder), sandbox, out, redactor)

        counts = dict(sorted(state.counts.items()))
        out.write("\nrequests the sandbox received, by endpoint:\n")
        for key, n in counts.items():
            out.write(f"  {n:4d}  {key}\n")
        for i, r in enumerate((first, second, third), 1):
            per_api = requests_by_api(r.request_counts)
            out.write(f"sync {i}: " + ", ".join(f"{a} {n}" for a, n in per_api.items()) + "\n")
    converged = (
        all(r.outcome is Outcome.CONVERGED for r in (first, second, third))
        and not third.requests
        and len(second.plan.revokes) == 1
        and len(second.plan.renewals) == 1
        and registered is not None
    )
    out.write(
        "\ndemo: "
        + (
            "converged; the last sync made no write request, and the new hire's webhook "
            "brought their certificate\n"
            if converged
            else "FAILED\n"
        )
    )
    return EXIT_OK if converged else EXIT_FAILED
