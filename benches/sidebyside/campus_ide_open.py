"""Campus beside Jupyter Server, with the student's IDE open before Run.

`../shared/peers/campus_bench.py` opens a WebSocket and sends `run` at once,
so Campus has no chance to prepare a warm sandbox: its figures are the cold
path. A student opens the IDE first and presses Run later. This wrapper runs
the same suite, the same client and the same Jupyter side, and changes one
step: each Campus "kernel" connection attaches to the session (what the IDE
does when it loads) and waits IDE_OPEN_S before the first `run`, so a warm
sandbox can be ready. Everything it measures after that is unchanged.

Usage (from the repository root, with the peers' venv):

    ../shared/peers/.venv/bin/python benches/sidebyside/campus_ide_open.py \
        --campus target/release/campus --with-jupyter --out sidebyside-ide-open.json

The cold-start row then reads: Jupyter's "create kernel -> kernel_info" beside
Campus's "IDE open -> Run (repl) -> prompt"; `kernel_info_after_connect_ms`
is the Run -> prompt part alone (the 0.5 s the IDE sat open is in `total_ms`).
"""

import asyncio
import os
import sys

PEERS = os.environ.get(
    "CAMPUS_PEERS_DIR",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "peers"),
)
sys.path.insert(0, os.path.abspath(PEERS))

import campus_bench as cb  # noqa: E402

# Long enough for a warm sandbox to be prepared on an idle machine (~80 ms),
# short against a student reading their code before pressing Run.
IDE_OPEN_S = float(os.environ.get("CAMPUS_IDE_OPEN_S", "0.5"))

_plain_session = cb.CampusTarget._session


async def _session_with_ide_open(self, user):
    s = await _plain_session(self, user)
    # Attach without replay: a reused bench user's earlier output must not be
    # read as this kernel's.
    await s.send({"type": "attach", "since_seq": 2**63})
    while True:
        m = await asyncio.wait_for(s.msgs.get(), 10)
        if m.get("type") == "attached":
            break
        if m.get("type") == "error":
            raise RuntimeError(f"attach refused: {m}")
    await asyncio.sleep(IDE_OPEN_S)
    while not s.chunks.empty():
        s.chunks.get_nowait()
    return s


cb.CampusTarget._session = _session_with_ide_open

if __name__ == "__main__":
    cb.main()
