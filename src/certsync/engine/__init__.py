"""Where decisions are made: gather every read, decide (pure, within a scope), apply.

Public surface, pure and imported here: `Scope`, `Observation`, `decide` and
`Decision`. The steps with I/O are imported from their modules, so that
importing the decision never loads an HTTP client or a database driver:
`engine.gather.gather`, `engine.apply.apply_requests`, and
`engine.cycle.run_sync` (one whole cycle, with `engine.report.SyncOptions`
and `SyncReport`).
"""

from certsync.engine.decide import Decision, decide
from certsync.engine.observation import Observation
from certsync.engine.scope import Scope

__all__ = ["Decision", "Observation", "Scope", "decide"]
