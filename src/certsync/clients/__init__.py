"""Where requests are sent: the HTTP layer, both API clients, and the tokens they carry.

Public surface: `Clients` and `open_clients` (both clients built from settings),
`NatecosmicClient`, `MonotreeClient`, `ApiHttp`, `Credential`, `TokenSource`.
"""

from certsync.clients.credentials import Credential, TokenSource
from certsync.clients.http import ApiHttp
from certsync.clients.monotree import MonotreeClient
from certsync.clients.natecosmic import NatecosmicClient
from certsync.clients.session import Clients, open_clients

__all__ = [
    "ApiHttp",
    "Clients",
    "Credential",
    "MonotreeClient",
    "NatecosmicClient",
    "TokenSource",
    "open_clients",
]
