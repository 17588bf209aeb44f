"""Fixtures of the security suite: those of tests/e2e, imported.

``stack`` is the session's one local stack, shared with the end-to-end suite (whichever runs first
starts it; HTTP_TUNNEL_E2E_STATE reuses a stack you already run, `make stack`). ``origin`` is the
e2e origin service, which also plays the hostile local service (its /set-cookie answers whatever
cookies it is asked for). ``tunnel`` and ``agent_factory`` start real ttf agents in front of it,
presenting whatever the stack requires.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import agent_factory, origin, stack, tunnel  # noqa: F401  (fixtures, shared)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if str(item.fspath).startswith(str(Path(__file__).parent)):
            item.add_marker(pytest.mark.e2e)
