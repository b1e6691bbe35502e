-- Order placement for bench/run: every request one buyer's token, one line over the products, a fresh key.
--
--   wrk -t2 -c50 -d10s -s bench/wrk/orders.lua http://127.0.0.1:PORT/api/v1/orders -- TOKENS IDS RUN THREADS
--
-- TOKENS: a file with one access token per line (the buyers); IDS: comma-separated product ids; RUN: a prefix
-- that makes the Idempotency-Keys unique to this run; THREADS: wrk's -t. Request n of the whole run (counted
-- across threads) goes to buyer n mod #buyers and product n mod #products, so each thread has buyers of its own
-- and every product is ordered alike. Prints report.lua's line with the count of each status added.

local here = debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./"
dofile(here .. "report.lua")

local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("thread_id", next_id)
  table.insert(threads, thread)
end

function init(args)
  tokens = {}
  for line in io.lines(args[1]) do
    if #line > 0 then tokens[#tokens + 1] = line end
  end
  products = {}
  for id in string.gmatch(args[2], "%d+") do products[#products + 1] = id end
  run, nthreads = args[3], tonumber(args[4])
  sent = 0
  statuses = {}
end

function request()
  local n = sent * nthreads + thread_id - 1
  sent = sent + 1
  local body = '{"items":[{"productId":' .. products[n % #products + 1] .. ',"quantity":1}]}'
  return wrk.format("POST", wrk.path, {
    ["Authorization"] = "Bearer " .. tokens[n % #tokens + 1],
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = run .. "-" .. n,
  }, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      total[status] = (total[status] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(total) do
    parts[#parts + 1] = string.format('"%d":%d', status, count)
  end
  bench_report(summary, latency, ',"statuses":{' .. table.concat(parts, ",") .. '}')
end
