"""The dynamic ``sessions`` partitions: one key per ingested session id (digits only)."""

import dagster as dg

sessions = dg.DynamicPartitionsDefinition(name="sessions")


def session_key(session_id: int) -> str:
    return str(int(session_id))
