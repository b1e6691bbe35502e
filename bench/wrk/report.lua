-- wrk's figures as one line for bench/harness.py: "BENCH {json}", times in microseconds.
-- Used by every wrk run of bench/run; orders.lua prints the same line with the status counts added.

function bench_report(summary, latency, extra)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d%s}\n',
    summary.requests, summary.duration, summary.bytes, latency:percentile(50), latency:percentile(99),
    latency.max, e.connect, e.read, e.write, e.status, e.timeout, extra or ""))
end

function done(summary, latency, requests)
  bench_report(summary, latency)
end
