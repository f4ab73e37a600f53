-- wrk script for bench/load.sh: POSTs the image in $BENCH_BODY to the URL and counts the
-- responses by status across all threads.
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "image/jpeg"

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  served_ms = {}
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status == 200 then
    -- The server's own time for the request (upload, queue wait, inference, encoding).
    local ms = tonumber(headers["x-tinct-elapsed-ms"] or headers["X-Tinct-Elapsed-Ms"] or "")
    if ms then table.insert(served_ms, ms) end
  end
end

local function pct(sorted, p)
  if #sorted == 0 then return 0 end
  local i = math.max(1, math.ceil(p / 100 * #sorted))
  return sorted[i]
end

function done(summary, latency, requests)
  local counts = {}
  local served = {}
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("statuses")) do
      counts[status] = (counts[status] or 0) + n
    end
    for _, ms in ipairs(t:get("served_ms")) do
      table.insert(served, ms)
    end
  end
  table.sort(served)
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write("--- summary (machine-readable) ---\n")
  io.write(string.format("duration_s %.1f\n", secs))
  io.write(string.format("requests %d\n", summary.requests))
  io.write(string.format("requests_per_s %.2f\n", summary.requests / secs))
  io.write(string.format("ok_per_s %.2f\n", (counts[200] or 0) / secs))
  -- All responses (503s included).
  io.write(string.format("latency_p50_ms %.1f\n", latency:percentile(50) / 1000))
  io.write(string.format("latency_p90_ms %.1f\n", latency:percentile(90) / 1000))
  io.write(string.format("latency_p99_ms %.1f\n", latency:percentile(99) / 1000))
  io.write(string.format("latency_max_ms %.1f\n", latency.max / 1000))
  io.write(string.format("served_200_server_ms p50=%d p99=%d max=%d (n=%d)\n",
    pct(served, 50), pct(served, 99), served[#served] or 0, #served))
  for status, n in pairs(counts) do
    io.write(string.format("status_%d %d\n", status, n))
  end
  io.write(string.format("socket_errors connect=%d read=%d write=%d timeout=%d\n",
    e.connect, e.read, e.write, e.timeout))
end
