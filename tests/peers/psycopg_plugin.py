"""pytest plugin for tests/peers/run (loaded with -p psycopg_plugin): the suite must test Debian's
installed psycopg (pure Python implementation), not the checkout's sources."""
import os

import psycopg

WANT = os.environ.get("PEERS_PSYCOPG_DIR", "/usr/lib/python3/dist-packages/psycopg")


def pytest_configure(config):
    got = os.path.dirname(os.path.realpath(psycopg.__file__))
    if got != os.path.realpath(WANT) or psycopg.pq.__impl__ != "python":
        raise RuntimeError(f"psycopg under test is {got} ({psycopg.pq.__impl__}), want {WANT} (python)")


def pytest_report_header(config):
    return [f"psycopg {psycopg.__version__} from {psycopg.__file__}, pq {psycopg.pq.__impl__}, "
            f"libpq {psycopg.pq.version()}, LD_PRELOAD={os.environ.get('LD_PRELOAD', '')}"]
