"""The store's commands, registered with `sercache` last (they inspect what the stages wrote)."""

from __future__ import annotations

from sercache.command import Stage

from . import cli

STAGES = (
    Stage("cache", "inspect, verify or export a feature store", lambda: cli.CACHE),
    Stage("text", "list or export a store's text sets (transcripts)", lambda: cli.TEXT),
)
