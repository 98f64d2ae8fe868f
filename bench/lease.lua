-- wrk script for the /v1 dialer API: lease leads, and report their outcomes.
-- Usage: wrk ... -s bench/lease.lua URL -- MODE AUTHORIZATION CAMPAIGN [LEASE_SECONDS]
--   MODE lease: every request leases one lead ({"count":1,"leaseSeconds":300}; 300 is
--     LEASE_SECONDS' default).
--   MODE cycle: each lease is followed by a report of its outcome (no_answer or
--     connected, 50/50), so that no_answer retries flow back into the queue.
-- wrk gives a script no handle on the connection a callback is for, so the cycle keeps
-- a per-thread FIFO of leased ids: response() queues the leaseId of each lease answer,
-- and the next request() of any connection posts that lease's outcome (every lease gets
-- exactly one report; leases and reports stay one to one).
-- done() prints one line: BENCH_RESULT {json}: requests, latency, status codes, and the
-- lease answers with a lead (leased), of a second or later attempt (retried), without one
-- (empty: the queue ran dry), and the outcome answers (reported).

local threads = {}
local headers = { ["Content-Type"] = "application/json" }
local mode, lease_request = "lease", nil
local queue, head, tail = {}, 1, 0
-- globals: read by done() via thread:get
status_counts, leased, retried, empty, reported = {}, 0, 0, 0, 0

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  mode = args[1] or mode
  headers["Authorization"] = args[2]
  local campaign = args[3] or "Bench"
  local seconds = tonumber(args[4] or "300")
  lease_request = wrk.format("POST", "/v1/campaigns/" .. campaign .. "/leases", headers,
    '{"count":1,"leaseSeconds":' .. seconds .. '}')
  math.randomseed(os.time() + 7919 * tid)
end

function request()
  if tail >= head then
    local id = queue[head]
    queue[head], head = nil, head + 1
    local outcome = math.random() < 0.5 and "no_answer" or "connected"
    return wrk.format("POST", "/v1/leases/" .. id .. "/outcome", headers,
      '{"outcome":"' .. outcome .. '"}')
  end
  return lease_request
end

function response(status, _, body)
  local k = tostring(status)
  status_counts[k] = (status_counts[k] or 0) + 1
  if status < 200 or status > 299 or not body then return end
  if string.find(body, '"leases"', 1, true) then
    local id = string.match(body, '"leaseId"%s*:%s*"(%x+)"')
    if not id then
      empty = empty + 1
    else
      leased = leased + 1
      local attempt = tonumber(string.match(body, '"attempt"%s*:%s*(%d+)') or "1")
      if attempt > 1 then retried = retried + 1 end
      if mode == "cycle" then
        tail = tail + 1
        queue[tail] = id
      end
    end
  elseif string.find(body, '"leadStatus"', 1, true) then
    reported = reported + 1
  end
end

function done(summary, latency, _)
  local codes, totals = {}, { leased = 0, retried = 0, empty = 0, reported = 0 }
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("status_counts")) do codes[k] = (codes[k] or 0) + v end
    for k, v in pairs(totals) do totals[k] = v + t:get(k) end
  end
  local parts = {}
  for k, v in pairs(codes) do table.insert(parts, string.format('"%s":%d', k, v)) end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"mean_us":%.1f,'
      .. '"socket_errors":%d,"leased":%d,"retried":%d,"empty":%d,"reported":%d,"status":{%s}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.mean,
    e.connect + e.read + e.write + e.timeout, totals.leased, totals.retried, totals.empty,
    totals.reported,
    table.concat(parts, ",")))
end
