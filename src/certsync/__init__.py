"""certsync: keeps Monotree certificates in step with Natecosmic certifications."""

__version__ = "0.1.0"
