#!/usr/bin/ruby
# The writer of tests/tools/nb-writer.py for ruby-pg: PG.connect (PQconnectStart and ruby-pg's own
# wait loop on the socket's IO), a new connection for every write, one line per write.
# usage: nb-writer.rb SECONDS INTERVAL_MS CONNINFO
require "pg"

secs, interval, dsn = ARGV[0].to_f, ARGV[1].to_i / 1000.0, ARGV[2]
query = "select coalesce(host(inet_client_addr()),'local'), coalesce(host(inet_server_addr()),'local'), " \
        "current_setting('port'), pg_is_in_recovery()"
insert = "insert into writes(src) values (current_setting('application_name'))"
mono = -> { Process.clock_gettime(Process::CLOCK_MONOTONIC) }
epoch = -> { (Time.now.to_f * 1000).to_i }
first = ->(e) { e.message.to_s.strip.lines.first.to_s.strip }
finish = mono.call + secs
$stdout.sync = true
while mono.call < finish
  t1 = mono.call
  begin
    conn = PG.connect(dsn)
  rescue => e
    puts format("%d FAIL %.1f %s: %s", epoch.call, (mono.call - t1) * 1000, e.class, first.call(e))
    conn = nil
  end
  if conn
    begin
      r = conn.exec(query).values[0]
      line = format("%d OK %.1f client=%s server=%s:%s recovery=%s", epoch.call, (mono.call - t1) * 1000,
                    r[0], r[1], r[2], r[3] == "t" ? "t" : "f")
      begin
        conn.exec(insert)
      rescue PG::Error => e
        state = (e.respond_to?(:result) && e.result && e.result.error_field(PG::PG_DIAG_SQLSTATE)) || "none"
        line += " write=FAIL sqlstate=#{state} #{first.call(e)}"
      end
      puts line
    rescue => e
      puts format("%d FAIL %.1f query: %s: %s", epoch.call, (mono.call - t1) * 1000, e.class, first.call(e))
    ensure
      conn.close rescue nil
    end
  end
  left = interval - (mono.call - t1)
  sleep left if left > 0
end
