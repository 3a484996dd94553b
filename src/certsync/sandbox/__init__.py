"""Local simulators of Natecosmic and Monotree, for the demo, the tests and the benchmark."""

from certsync.sandbox.faults import Fault, FaultConfig
from certsync.sandbox.generate import World, generate, make_record
from certsync.sandbox.server import Sandbox
from certsync.sandbox.state import MonotreeUser, SandboxState, Template

__all__ = [
    "Fault",
    "FaultConfig",
    "MonotreeUser",
    "Sandbox",
    "SandboxState",
    "Template",
    "World",
    "generate",
    "make_record",
]
