<?php
// The writer of tests/tools/nb-writer.py for PHP's asynchronous connect: pg_connect() with
// PGSQL_CONNECT_ASYNC, the socket taken once with pg_socket(), pg_connect_poll() driven from
// stream_select(); a new connection for every write, one line per write.
// usage: php nb-writer.php SECONDS INTERVAL_MS CONNINFO
[$_, $secs, $interval, $dsn] = $argv;
$query = "select coalesce(host(inet_client_addr()),'local'), coalesce(host(inet_server_addr()),'local'), "
       . "current_setting('port'), pg_is_in_recovery()";
$insert = "insert into writes(src) values (current_setting('application_name'))";
$epoch = fn() => (int)(microtime(true) * 1000);
$mono = fn() => hrtime(true) / 1e6;
$first = fn($s) => trim(strtok((string)$s, "\n"));
$end = $mono() + $secs * 1000;
while ($mono() < $end) {
    $t1 = $mono();
    $c = @pg_connect($dsn, PGSQL_CONNECT_ASYNC | PGSQL_CONNECT_FORCE_NEW);
    $err = null;
    if (!$c) {
        $err = "pg_connect failed";
    } else {
        $sock = pg_socket($c); // taken once
        $deadline = $mono() + 30000;
        for (;;) {
            $st = pg_connect_poll($c);
            if ($st === PGSQL_POLLING_OK) break;
            if ($st === PGSQL_POLLING_FAILED) { $err = $first(pg_last_error($c)); break; }
            $r = $w = $x = [];
            if ($st === PGSQL_POLLING_READING) $r = [$sock]; else $w = [$sock];
            if ($mono() > $deadline) { $err = "no event for 30 s"; break; }
            if (@stream_select($r, $w, $x, 1) === false) { $err = "stream_select failed"; break; }
        }
    }
    if ($err !== null) {
        printf("%d FAIL %.1f %s\n", $epoch(), $mono() - $t1, $err);
        if ($c) pg_close($c);
    } else {
        $res = @pg_query($c, $query);
        if (!$res) {
            printf("%d FAIL %.1f query: %s\n", $epoch(), $mono() - $t1, $first(pg_last_error($c)));
        } else {
            $row = pg_fetch_row($res);
            $line = sprintf("%d OK %.1f client=%s server=%s:%s recovery=%s", $epoch(), $mono() - $t1,
                            $row[0], $row[1], $row[2], $row[3] === 't' ? 't' : 'f');
            if (!@pg_query($c, $insert)) {
                $line .= " write=FAIL sqlstate=none " . $first(pg_last_error($c));
            }
            echo $line, "\n";
        }
        pg_close($c);
    }
    $left = $interval / 1000 - ($mono() - $t1) / 1000;
    if ($left > 0) usleep((int)($left * 1e6));
}
