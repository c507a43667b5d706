-- wrk script for the ingest benchmark: authenticated POSTs spread over distinct households.
-- BENCH_REQUESTS names a file of "path<TAB>body" lines written by bench/checkin.py; "{KEY}" in a body
-- becomes a key unique to this run, thread and request (idempotency key / client id). BENCH_OFFSET skips
-- the households that earlier runs (warm-up) already used, so that every scan is a first one.
-- BENCH_LATENCIES, when set, names a file that receives every request's own latency (µs, one per
-- line): wrk's report applies a coordinated-omission correction to its percentiles, pgbench's log
-- does not, and the benchmark reports both measures for both.
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock, bench_timespec *tp);
]]
local clock = ffi.new("bench_timespec")
local function now_us()
  ffi.C.clock_gettime(1, clock) -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) * 1000000 + math.floor(tonumber(clock.tv_nsec) / 1000)
end
local latencies_file = os.getenv("BENCH_LATENCIES")
local started = {}
local threads = {}
latencies = {} -- global: read from each thread's state by done()

local token = os.getenv("BENCH_TOKEN")
local source = os.getenv("BENCH_REQUESTS")
local run = os.getenv("BENCH_RUN") or "0"
local threads_started = 0
local lines = {}
local counter = tonumber(os.getenv("BENCH_OFFSET") or "0")

function setup(thread)
  threads[#threads + 1] = thread
  thread:set("tid", threads_started)
  threads_started = threads_started + 1
end

function init(args)
  for line in io.lines(source) do
    local path, body = line:match("^([^\t]+)\t(.*)$")
    if path then
      lines[#lines + 1] = { path, body }
    end
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. token
end

function request()
  counter = counter + 1
  -- Threads walk the households from different ends so that no two requests in flight share one.
  local index = (counter * 2 + tid) % #lines + 1
  local line = lines[index]
  local key = run .. "-" .. tid .. "-" .. counter
  if latencies_file then
    started[key] = now_us()
  end
  return wrk.format(nil, line[1], nil, (line[2]:gsub("{KEY}", key)))
end

if latencies_file then
  -- From the request's making to its answer's parsing, as wrk's own clock runs; matched by client id.
  function response(status, headers, body)
    local key = body and body:match('"client_id":"bench%.([^"]+)"')
    local t0 = key and started[key]
    if t0 then
      latencies[#latencies + 1] = now_us() - t0
      started[key] = nil
    end
  end

  function done(summary, latency, requests)
    local out = assert(io.open(latencies_file, "w"))
    for _, thread in ipairs(threads) do
      for _, value in ipairs(thread:get("latencies")) do
        out:write(value, "\n")
      end
    end
    out:close()
  end
end
