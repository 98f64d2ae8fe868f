-- wrk script for POST /ca_apis/AddCampaignData with realistic, varied leads.
-- Usage: wrk ... -s bench/ingest.lua URL -- RUN_INDEX API_KEY ACCOUNTS
-- Phone numbers are distinct across threads (first digit), runs (next 3
-- digits, RUN_INDEX) and requests (last 6 digits, a per-thread counter).
-- done() prints one line: BENCH_RESULT {json}.

local threads = {}
local headers = { ["Content-Type"] = "application/json" }
local cities = { "Pune", "Mumbai", "Delhi", "Chennai", "Kolkata", "Jaipur" }
local counter, prefix, api_key, accounts = 0, "", "benchkey123", 1
status_counts, ok_bodies = {}, 0 -- globals: read by done() via thread:get

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  local run = tonumber(args[1] or "0") % 1000
  api_key = args[2] or api_key
  accounts = tonumber(args[3] or "1")
  prefix = string.format("%d%03d", 6 + tid % 4, run)
  math.randomseed(run * 7919 + tid * 104729 + os.time())
end

local function extras(n)
  local s = ',"city":"' .. cities[math.random(#cities)] .. '","email":"lead' .. n .. '@example.com"'
  if math.random() < 0.5 then s = s .. ',"orderNo":"ORD' .. n .. '"' end
  return s
end

function request()
  counter = counter + 1
  local phone = prefix .. string.format("%06d", counter % 1000000)
  local priority = tostring(math.random(0, 9))
  local r = math.random(1000)
  if r <= 15 then phone = "12ab" elseif r <= 30 then priority = "150" end -- ~3% invalid
  local index = counter % accounts
  local user = string.format("bench%03d", index)
  local key = index == 0 and api_key or (api_key .. string.format("%03d", index)) -- benchlib.account_key
  local body = '{"userName":"' .. user .. '","apiKey":"' .. key
    .. '","campaignName":"Bench","phoneNumber":"' .. phone
    .. '","Name":"Lead ' .. counter .. '","priority":"' .. priority
    .. '","checkDuplicate":"' .. (math.random() < 0.5 and "true" or "false") .. '"'
  if math.random() < 0.2 then body = body .. ',"expiryDate":"2099-12-31 23:59:59"' end
  if math.random() < 0.3 then body = body .. extras(counter) end
  return wrk.format("POST", "/ca_apis/AddCampaignData", headers, body .. "}")
end

function response(status, _, body)
  local k = tostring(status)
  status_counts[k] = (status_counts[k] or 0) + 1
  if body and string.find(body, "Success", 1, true) then ok_bodies = ok_bodies + 1 end
end

function done(summary, latency, _)
  local codes, ok = {}, 0
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("status_counts")) do codes[k] = (codes[k] or 0) + v end
    ok = ok + t:get("ok_bodies")
  end
  local parts = {}
  for k, v in pairs(codes) do table.insert(parts, string.format('"%s":%d', k, v)) end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"mean_us":%.1f,'
      .. '"socket_errors":%d,"ok_bodies":%d,"status":{%s}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.mean,
    e.connect + e.read + e.write + e.timeout, ok, table.concat(parts, ",")))
end
