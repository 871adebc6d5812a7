#!/usr/bin/env node
// The writer of tests/tools/nb-writer.py for node's pg-native (node-libpq: its connect runs libpq's
// PQconnectdb on a libuv worker thread), a new connection for every write, one line per write.
// usage: NODE_PATH=<dir with pg-native> nb-writer.js SECONDS INTERVAL_MS CONNINFO
'use strict';
const Client = require('pg-native');

const [secs, interval, dsn] = [parseFloat(process.argv[2]), parseInt(process.argv[3], 10), process.argv[4]];
const query = "select coalesce(host(inet_client_addr()),'local') as c, coalesce(host(inet_server_addr()),'local') as s, " +
              "current_setting('port') as p, pg_is_in_recovery() as r";
const insert = "insert into writes(src) values (current_setting('application_name'))";
const mono = () => Number(process.hrtime.bigint()) / 1e6;
const first = (e) => String(e && e.message ? e.message : e).trim().split('\n')[0].trim();
const finish = mono() + secs * 1000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// pg-native reports a connection the server ended mid-query (a crashed leader) only as an 'error'
// event, never through the query's callback (without a listener node exits on it); at other moments
// it leaves the call pending with nothing for node's event loop to wait on, and node exits with
// code 0 (seen without the shim too). Either way the writer fails that call and goes on.
let pending = null; // the pending call's reject
const call = (c, f, ...a) =>
  new Promise((res, rej) => {
    const lost = (err) => settle(rej, err);
    const settle = (fn, v) => {
      pending = null;
      c.removeListener('error', lost);
      fn(v);
    };
    pending = lost;
    c.once('error', lost);
    c[f](...a, (err, rows) => (err ? settle(rej, err) : settle(res, rows)));
  });
let phase = 'start';
process.on('beforeExit', () => {
  if (pending && mono() < finish)
    pending(new Error(`the server ended the connection during ${phase}; pg-native left the call pending`));
});

(async () => {
  while (mono() < finish) {
    const t1 = mono();
    const c = new Client();
    c.on('error', () => {}); // outside a call: the next call fails on its own
    let line;
    try {
      phase = 'connect';
      await call(c, 'connect', dsn);
    } catch (e) {
      console.log(`${Date.now()} FAIL ${(mono() - t1).toFixed(1)} connect: ${first(e)}`);
      c.end(() => {});
      const left = interval - (mono() - t1);
      if (left > 0) await sleep(left);
      continue;
    }
    try {
      phase = 'query';
      const r = (await call(c, 'query', query))[0];
      line = `${Date.now()} OK ${(mono() - t1).toFixed(1)} client=${r.c} server=${r.s}:${r.p} recovery=${r.r ? 't' : 'f'}`;
      try {
        phase = 'insert';
        await call(c, 'query', insert);
      } catch (e) {
        line += ` write=FAIL sqlstate=${(e && e.sqlState) || 'none'} ${first(e)}`;
      }
      console.log(line);
    } catch (e) {
      console.log(`${Date.now()} FAIL ${(mono() - t1).toFixed(1)} query: ${first(e)}`);
    }
    phase = 'end';
    await new Promise((res) => c.end(res));
    phase = 'sleep';
    const left = interval - (mono() - t1);
    if (left > 0) await sleep(left);
  }
})();
