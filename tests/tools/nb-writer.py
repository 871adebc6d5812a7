#!/usr/bin/python3
"""A long-lived writer that opens a new connection for every write, as the non-blocking clients do
it: psycopg 3 (psycopg.connect: PQconnectStartParams and its own PQconnectPoll loop), psycopg 3's
AsyncConnection under asyncio, and psycopg2's async mode driven from asyncio with the socket taken
once (its reader stays registered and the writer is added and removed, so every state change is an
epoll_ctl(EPOLL_CTL_MOD) of that one registration, as aiopg does).

usage: nb-writer.py psycopg|psycopg-async|psycopg2-async SECONDS INTERVAL_MS CONNINFO

One line per write, as tests/tools/pqr-client's writer prints them:
  <epoch ms> OK <ms> client=<addr> server=<addr>:<port> recovery=<t|f> [write=FAIL sqlstate=S ...]
  <epoch ms> FAIL <ms> <first line of the error>
"""
import asyncio
import sys
import time

kind, seconds, interval, dsn = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]) / 1000.0, sys.argv[4]
QUERY = ("select coalesce(host(inet_client_addr()),'local'), coalesce(host(inet_server_addr()),'local'), "
         "current_setting('port'), pg_is_in_recovery()")
INSERT = "insert into writes(src) values (current_setting('application_name'))"


def line(t0, row=None, err=None, werr=None, after_connect=False):
    """A failed connect is "FAIL <ms> <error>"; a connection the server ended before the query
    that reports where it landed is "FAIL <ms> query: <error>" (as pqr-client prints it)."""
    ms = (time.monotonic() - t0) * 1000
    if row is None:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return "%d FAIL %.1f %s%s: %s" % (time.time() * 1000, ms, "query: " if after_connect else "",
                                          type(err).__name__, first)
    s = "%d OK %.1f client=%s server=%s:%s recovery=%s" % (
        time.time() * 1000, ms, row[0], row[1], row[2], "t" if row[3] else "f")
    if werr is not None:
        state = getattr(werr, "sqlstate", None) or getattr(werr, "pgcode", None) or "none"
        s += " write=FAIL sqlstate=%s %s" % (state, str(werr).strip().splitlines()[0] if str(werr).strip() else "")
    return s


def once_psycopg():
    import psycopg
    t0 = time.monotonic()
    try:
        conn = psycopg.connect(dsn, autocommit=True)
    except Exception as e:  # noqa: BLE001 - every failure is a line
        return line(t0, err=e)
    with conn:
        try:
            row = conn.execute(QUERY).fetchone()
        except Exception as e:  # noqa: BLE001
            return line(t0, err=e, after_connect=True)
        ms_line = None
        try:
            conn.execute(INSERT)
        except Exception as e:  # noqa: BLE001
            ms_line = line(t0, row, werr=e)
        return ms_line or line(t0, row)


async def once_psycopg_async():
    import psycopg
    t0 = time.monotonic()
    try:
        conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    except Exception as e:  # noqa: BLE001
        return line(t0, err=e)
    async with conn:
        try:
            cur = await conn.execute(QUERY)
            row = await cur.fetchone()
        except Exception as e:  # noqa: BLE001
            return line(t0, err=e, after_connect=True)
        try:
            await conn.execute(INSERT)
        except Exception as e:  # noqa: BLE001
            return line(t0, row, werr=e)
        return line(t0, row)


async def wait_fd(conn, fd, state):
    """psycopg2's documented async loop, on a registration made once: the reader stays, the writer
    comes and goes (EPOLL_CTL_MOD each time)."""
    import psycopg2.extensions as ext
    loop = asyncio.get_running_loop()
    while True:
        st = conn.poll()
        if st == ext.POLL_OK:
            return
        fut = loop.create_future()

        def ready(*_):
            if not fut.done():
                fut.set_result(None)
        loop.add_reader(fd, ready)
        if st == ext.POLL_WRITE:
            loop.add_writer(fd, ready)
        try:
            await asyncio.wait_for(fut, 30)
        finally:
            if st == ext.POLL_WRITE:
                loop.remove_writer(fd)


async def once_psycopg2_async():
    import psycopg2
    loop = asyncio.get_running_loop()
    t0 = time.monotonic()
    conn = fd = None
    connected = False
    try:
        conn = psycopg2.connect(dsn, async_=True)
        fd = conn.fileno()  # taken once
        await wait_fd(conn, fd, None)
        connected = True
        cur = conn.cursor()
        cur.execute(QUERY)
        await wait_fd(conn, fd, None)
        row = cur.fetchone()
    except Exception as e:  # noqa: BLE001
        if fd is not None:
            loop.remove_reader(fd)
        if conn is not None:
            conn.close()
        return line(t0, err=e, after_connect=connected)
    werr = None
    try:
        cur.execute(INSERT)
        await wait_fd(conn, fd, None)
    except Exception as e:  # noqa: BLE001
        werr = e
    loop.remove_reader(fd)
    conn.close()
    return line(t0, row, werr=werr)


async def run_async(once):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t1 = time.monotonic()
        print(await once(), flush=True)
        left = interval - (time.monotonic() - t1)
        if left > 0:
            await asyncio.sleep(left)


if kind == "psycopg":
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t1 = time.monotonic()
        print(once_psycopg(), flush=True)
        left = interval - (time.monotonic() - t1)
        if left > 0:
            time.sleep(left)
elif kind == "psycopg-async":
    asyncio.run(run_async(once_psycopg_async))
elif kind == "psycopg2-async":
    asyncio.run(run_async(once_psycopg2_async))
else:
    sys.exit("usage: nb-writer.py psycopg|psycopg-async|psycopg2-async SECONDS INTERVAL_MS CONNINFO")
