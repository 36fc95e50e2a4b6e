-- wrk script for make bench's service rows: every request goes to the next of the Flask
-- service's four routes (tests/programs/py/flask_service/app.py), so the issued mix is a
-- fixed quarter each. done() prints the numbers scripts/bench.py reads.
local routes = { "/hash", "/parse", "/sqlite", "/lock" }
local n = 0

request = function()
  n = n % #routes + 1
  return wrk.format("GET", routes[n])
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("requests=%d\n", summary.requests))
  io.write(string.format("duration_us=%d\n", summary.duration))
  io.write(string.format("p50_us=%d\n", latency:percentile(50)))
  io.write(string.format("p99_us=%d\n", latency:percentile(99)))
  io.write(string.format("errors=%d\n", e.connect + e.read + e.write + e.status + e.timeout))
end
