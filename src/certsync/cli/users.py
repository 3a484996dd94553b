"""USER arguments: the people `sync --user`, `explain` and `history --user` ask about."""

from __future__ import annotations

from collections.abc import Sequence

from certsync.errors import CertsyncError
from certsync.mappings_file import load_mapping_file
from certsync.people import Person, find_person
from certsync.settings import Settings
from certsync.store import Store


class NobodyToSyncError(CertsyncError):
    """No USER asked for is a Monotree user certsync can write for (yet)."""


def find_people(settings: Settings, store: Store, asked: Sequence[str]) -> list[Person]:
    """Resolve each USER through the mapping file (when one is set, as a sync would
    import it) or the store's mappings, and the store's cache of Monotree's users."""
    if settings.mappings_file is not None:
        user_mappings = list(load_mapping_file(settings.mappings_file).users)
    else:
        user_mappings = store.mappings.users()
    by_email = store.users.by_email()
    return [find_person(a, user_mappings, by_email) for a in asked]


def why_not_synced(person: Person) -> str:
    if person.pending_email is not None:
        return (
            f"{person.asked}: its email {person.pending_email} is not a registered Monotree "
            "user yet (invite pending); it is synced once they register"
        )
    return f"{person.asked}: no user mapping names a Monotree user for it"
