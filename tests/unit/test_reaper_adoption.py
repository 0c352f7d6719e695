"""The reaper adopts processes another process forked and handed over (a zygote's runs).

Each scenario runs in its own interpreter: the reaper waits on every child
(`waitpid(-1)`) and makes its process a subreaper, which must not happen to
the test session's own process.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import asyncio, os

    from cove.agent.proc.harden import harden_self
    from cove.agent.proc.reaper import Reaper

    async def main():
        harden_self()  # orphans come to us, as to the agent (PID 1 in a sandbox)
        reaper = Reaper()
        r, w = os.pipe()
        os.set_blocking(r, False)

        def read_reports():
            try:
                data = os.read(r, 4096)
            except BlockingIOError:
                return
            for line in data.split():
                adopted.append(reaper.adopt(int(line)))
            if len(adopted) == 3:
                all_reported.set()

        adopted = []
        all_reported = asyncio.Event()
        reaper.adopters.append(read_reports)
        # An intermediate forks runs that exit at once, reports them, and exits:
        # each run is its zombie until then, and the agent's child only after.
        intermediate = os.fork()
        if intermediate == 0:
            for code in (3, 5, 7):
                run = os.fork()
                if run == 0:
                    os._exit(code)
                os.write(w, b"%d\\n" % run)
            os._exit(0)
        os.close(w)
        own = reaper.watch(intermediate)
        assert await asyncio.wait_for(own, 10) == 0
        # The reports are read only when the reaper meets an unknown child.
        await asyncio.wait_for(all_reported.wait(), 10)
        codes = await asyncio.wait_for(asyncio.gather(*adopted), 10)
        print(sorted(codes))
        assert reaper.adopt(os.getpid()) is not None  # unknown pid: watched
        assert reaper.adopt(os.getpid()) is None  # already watched: refused

    asyncio.run(main())
    """
)


@pytest.mark.timeout(300)
def test_runs_handed_over_after_their_report_are_never_lost() -> None:
    for _ in range(20):  # the run's exit races the report's reading
        out = subprocess.run(
            [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout == "[3, 5, 7]\n"
