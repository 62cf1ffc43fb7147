-- wrk-proxy.lua: drive wrk in forward-proxy form for bench/run.sh.
--
-- What it does: every request wrk sends carries the request target given
-- as the first script argument (after "--" on the wrk command line), e.g.
--   wrk ... http://127.0.0.1:PROXY/ -- http://127.0.0.1:ORIGIN/1k
-- wrk connects to the host:port of its URL (the proxy) and writes
--   GET http://127.0.0.1:ORIGIN/1k HTTP/1.1
--   Host: 127.0.0.1:ORIGIN
-- which is what a browser configured with an explicit proxy sends.  With
-- an origin-form target ("/1k") the same script benchmarks the origin
-- directly, so every row of the report comes out of the same code path.
--
-- What it assumes: wrk 4.x (wrk.format, done(summary, latency, requests)).
--
-- Why it is built this way: the request is formatted once per thread in
-- init() and returned verbatim by request(), so the script adds no per
-- request Lua work and the connection keeps wrk's pipelining-free,
-- keep-alive behaviour.  No response() hook is defined on purpose: its
-- mere presence makes wrk parse every response in Lua and slows the
-- client, which would flatten the differences being measured.  done()
-- prints one machine-readable line that run.sh greps for.

local req

function init(args)
   local target = args[1] or wrk.path
   local headers = {}
   -- Host must name the origin, not the proxy wrk connects to.
   local authority = string.match(target, "^%a[%w+.-]*://([^/]+)")
   headers["Host"] = authority or wrk.headers["Host"]
   req = wrk.format("GET", target, headers)
end

function request()
   return req
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
