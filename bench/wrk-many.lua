-- wrk-many.lua: drive wrk in forward-proxy form over many URLs, for
-- bench/memcached.py.
--
-- What it does: each request asks for PREFIX .. n, n uniformly random in
-- 1..N (the script arguments after "--": PREFIX N [SEED]), e.g.
--   wrk ... http://127.0.0.1:PROXY/ -- http://127.0.0.1:ORIGIN/16k/ 4000
-- with the Host field of the origin, as a browser behind a proxy sends.
--
-- What it assumes: wrk 4.x; the origin serves PREFIX1 .. PREFIXN.
--
-- Why it is built this way: the memcached tier is only exercised when
-- the working set is larger than the shared-memory cache, so one URL
-- (wrk-proxy.lua) cannot measure it.  The requests are formatted once
-- in init() and picked by index, so the client's Lua cost per request
-- is one random number; done() prints the same BENCH_RESULT line as
-- wrk-proxy.lua.

local reqs = {}
local n = 1

function init(args)
   local prefix = args[1]
   n = tonumber(args[2] or "1")
   math.randomseed(tonumber(args[3] or "1") + os.time())
   local authority = string.match(prefix, "^%a[%w+.-]*://([^/]+)")
   for i = 1, n do
      reqs[i] = wrk.format("GET", prefix .. i, { ["Host"] = authority })
   end
end

function request()
   return reqs[math.random(n)]
end

function done(summary, latency, requests)
   local secs = summary.duration / 1e6
   local e = summary.errors
   io.write(string.format(
      "BENCH_RESULT rps=%.1f p50_us=%d p99_us=%d max_us=%d requests=%d " ..
      "bytes=%d duration_s=%.3f err_connect=%d err_read=%d err_write=%d " ..
      "err_status=%d err_timeout=%d\n",
      summary.requests / secs,
      latency:percentile(50), latency:percentile(99), latency.max,
      summary.requests, summary.bytes, secs,
      e.connect, e.read, e.write, e.status, e.timeout))
end
