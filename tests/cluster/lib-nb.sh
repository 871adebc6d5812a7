# Non-blocking writers for the switchover and crash of t50 (issue 29): each opens a new connection
# for every write the way event-loop clients connect — a C epoll loop that registers the socket once
# and only modifies it, psycopg 3 (its own PQconnectPoll loop), psycopg 3 under asyncio, psycopg2's
# async mode under asyncio with the socket taken once, ruby-pg's PG.connect, PHP's
# PGSQL_CONNECT_ASYNC with the socket taken once — each through the shim; and node's pg-native
# (libpq's blocking connect on a libuv worker thread), fetched with npm (scripts/fetch-node-pg).
# Sourced after lib-cluster.sh; $tmp is the test's directory.
NB_WRITERS="epoll psycopg psycopg-async psycopg2-async ruby-pg php-async node-pg-native"
NODE_PG_DIR=${PQR_NODE_DIR:-/var/cache/pqroute-node}
"$ROOT/scripts/fetch-node-pg" "$NODE_PG_DIR" ||
    echo "# fetching node's pg-native failed: its writer's rows fail"
NB_BUDGET_MS=${NB_BUDGET_MS:-6000} # generous: connect_timeout=3 is 3 s per host for libpq
NB_PIDS=()

nb_start() { # tag
    local w cmd
    for w in $NB_WRITERS; do
        case $w in
        epoll) cmd=("$CLIENT" epollwriter) ;;
        ruby-pg) cmd=(/usr/bin/ruby "$ROOT/tests/tools/nb-writer.rb") ;;
        php-async) cmd=(/usr/bin/php "$ROOT/tests/tools/nb-writer.php") ;;
        node-pg-native) cmd=(env NODE_PATH="$NODE_PG_DIR/node_modules" node "$ROOT/tests/tools/nb-writer.js") ;;
        *) cmd=(/usr/bin/python3 "$ROOT/tests/tools/nb-writer.py" "$w") ;;
        esac
        PQROUTE_LOG=${NB_LOG:-info} LD_PRELOAD=$PRELOAD "${cmd[@]}" 180 100 "$RW application_name=nb-$w" >"$tmp/$1-nb-$w" 2>&1 &
        NB_PIDS+=($!)
    done
    for w in $NB_WRITERS; do wait_for 30 grep -q "^[0-9]* OK " "$tmp/$1-nb-$w"; done
}

nb_landed() { # tag ip: every writer made 3 complete writes there
    local w
    for w in $NB_WRITERS; do
        [ "$(grep -c "^[0-9]* OK .*server=$2:.*recovery=f" "$tmp/$1-nb-$w")" -ge 3 ] || return 1
    done
}

nb_stop() { kill "${NB_PIDS[@]}" 2>/dev/null; NB_PIDS=(); }

nb_check() { # tag label t_event new_ip direct_file
    local w f d s bad fails slow ended
    d=$(awk -v t="$3" -v ip="server=$4:" '$1 > t && $2 == "OK" && index($0, ip) && !/write=FAIL/ {print $1; exit}' "$5")
    for w in $NB_WRITERS; do
        f=$tmp/$1-nb-$w
        bad=$(grep -c '^[0-9]* OK .*\(recovery=t\|write=FAIL sqlstate=25006\)' "$f")
        fails=$(grep '^[0-9]* FAIL ' "$f" | grep -vc '^[0-9]* FAIL [0-9.]* query: ')
        ended=$(( $(grep -c '^[0-9]* FAIL [0-9.]* query: ' "$f") + $(grep ' OK .*recovery=f' "$f" | grep -c 'write=FAIL') ))
        slow=$(awk -v b="$NB_BUDGET_MS" '$2 == "FAIL" || $2 == "OK" { if ($3 + 0 > b) n++ } END { print n + 0 }' "$f")
        s=$(awk -v t="$3" -v ip="server=$4:" '$1 > t && $2 == "OK" && index($0, ip) && !/write=FAIL/ {print $1; exit}' "$f")
        ok $([ "$bad" = 0 ]; echo $?) "$2, non-blocking $w: no write on a replica ($(grep -c ' OK ' "$f") OK)"
        if [ "$1" = sw ]; then # in a crash nothing takes writes until Patroni's TTL has passed
            ok $([ "$fails" = 0 ]; echo $?) "$2, non-blocking $w: no failed connect ($fails; $ended connections or writes the server ended)"
            [ "$fails" = 0 ] || grep '^[0-9]* FAIL ' "$f" | grep -v ' query: ' | head -3 | sed 's/^/#   /'
        else
            diag "$2, non-blocking $w: $fails failed connects while no leader took writes (direct writer: $(grep -c '^[0-9]* FAIL ' "$5")); $ended ended by the server"
        fi
        ok $([ "$slow" = 0 ]; echo $?) "$2, non-blocking $w: no connect past its budget ($slow over $NB_BUDGET_MS ms; longest $(awk '{ if ($3 + 0 > m) m = $3 + 0 } END { print m + 0 }' "$f") ms)"
        ok $([ -n "$s" ] && [ -n "$d" ] && [ $((s - d)) -le 3000 ] &&
            awk -v t="$3" -v ip="server=$4:" '$1 > t && $2 == "OK" && index($0, ip) && !/write=FAIL/ {print; exit}' "$f" | grep -vq "client=$PROXY"; echo $?) \
            "$2, non-blocking $w: lands on the new leader directly, right after the direct writer ($([ -n "$s" ] && [ -n "$d" ] && echo "$((s - d)) ms" || echo "no write there")); bound 3 s)"
        [ -n "$s" ] || tail -5 "$f" | sed 's/^/#   last: /' # a writer that died says why
    done
}
