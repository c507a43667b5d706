-- wrk script for the ingest benchmark: authenticated POSTs spread over distinct households.
-- BENCH_REQUESTS names a file of "path<TAB>body" lines written by bench/checkin.py; "{KEY}" in a body
-- becomes a key unique to this run, thread and request (idempotency key / client id). BENCH_OFFSET skips
-- the households that earlier runs (warm-up) already used, so that every scan is a first one.
local token = os.getenv("BENCH_TOKEN")
local source = os.getenv("BENCH_REQUESTS")
local run = os.getenv("BENCH_RUN") or "0"
local threads_started = 0
local lines = {}
local counter = tonumber(os.getenv("BENCH_OFFSET") or "0")

function setup(thread)
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
  return wrk.format(nil, line[1], nil, (line[2]:gsub("{KEY}", key)))
end
