"""`certsync mappings check`: every mapping against what both APIs say, read only."""

from __future__ import annotations

from typing import TextIO

from certsync.cli.exit_codes import EXIT_FAILED, EXIT_OK
from certsync.clients.session import open_clients
from certsync.errors import ApiError, AuthError, ForbiddenError, NotFoundError
from certsync.mappings_file import load_mapping_file
from certsync.redaction import Redactor
from certsync.settings import Settings, check_config
from certsync.store import open_store


def check_mappings(settings: Settings, out: TextIO, redactor: Redactor) -> int:
    """Print one line per problem; exit 1 if there is any."""
    check_config(settings)
    store = open_store(settings)
    problems: list[str] = []
    try:
        if settings.mappings_file is not None:
            store.mappings.import_file(load_mapping_file(settings.mappings_file), prune=True)
        types, users = store.mappings.types(), store.mappings.users()
        with open_clients(settings, redactor=redactor) as clients:
            pull = clients.natecosmic.list_certifications()
            seen_keys = {k for r in pull.records for k in r.type_keys()}
            for t in types:
                try:
                    template = clients.monotree.get_template(t.monotree)
                except NotFoundError:
                    problems.append(f"type {t.natecosmic!r}: template {t.monotree} does not exist")
                    continue
                if not template.is_published:
                    problems.append(
                        f"type {t.natecosmic!r}: template {t.monotree} "
                        f"({template.title!r}) is not published"
                    )
                if t.natecosmic not in seen_keys:
                    problems.append(
                        f"type {t.natecosmic!r}: no record of this type in the Natecosmic pull"
                    )
            try:
                listed = clients.monotree.list_users()
            except ForbiddenError as exc:
                problems.append(f"cannot check users: {exc}")
                listed = None
            if listed is not None:
                store.users.replace((u.id, u.email, u.name) for u in listed)
                ids = {u.id for u in listed}
                emails = {u.email.lower() for u in listed if u.email}
                for u in users:
                    if u.monotree is not None and u.monotree not in ids:
                        problems.append(
                            f"user {u.natecosmic!r}: Monotree user {u.monotree} is not listed "
                            "(deactivated, or invitation pending)"
                        )
                    if u.monotree_email is not None and u.monotree_email not in emails:
                        problems.append(
                            f"user {u.natecosmic!r}: no Monotree user has the email "
                            f"{u.monotree_email} (unresolved)"
                        )
    except ApiError as exc:
        if isinstance(exc, AuthError):
            raise
        problems.append(str(exc))
    finally:
        store.close()
    for line in problems:
        out.write(f"PROBLEM  {line}\n")
    out.write(
        f"checked {len(types)} type mapping(s) and {len(users)} user mapping(s): "
        f"{len(problems)} problem(s)\n"
    )
    return EXIT_FAILED if problems else EXIT_OK
