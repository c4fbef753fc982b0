-- bench/intake with `--load wrk`: POST the envelopes of a file, spread over wrk's threads.
-- Arguments (after `--`): the envelope file (envelopes separated by SEPARATOR), the thread count,
-- and "once" (each envelope at most once: a thread that runs out stops and says so) or "cycle".
-- done() prints one JSON line that wrk_load.py reads.

local SEPARATOR = "\n<!--bench-envelope-separator-->\n"
local next_id = 0
local threads = {}

function setup(thread)
   thread:set("id", next_id)
   next_id = next_id + 1
   threads[#threads + 1] = thread
end

function init(args)
   local file = assert(io.open(args[1], "rb"))
   local data = file:read("*a")
   file:close()
   local count = tonumber(args[2])
   cycle = args[3] == "cycle"
   exhausted = 0
   mine, position = {}, 0
   local index, start = 0, 1
   while true do
      local stop = data:find(SEPARATOR, start, true)
      if not stop then break end
      if index % count == id then mine[#mine + 1] = data:sub(start, stop - 1) end
      index, start = index + 1, stop + #SEPARATOR
   end
   headers = { ["Content-Type"] = "text/xml; charset=utf-8" }
end

function request()
   position = position + 1
   if position > #mine then
      if cycle then
         position = 1
      else
         -- never send an envelope twice: stop, and send a harmless GET while the thread winds down
         exhausted = 1
         wrk.thread:stop()
         return wrk.format("GET", "/healthz")
      end
   end
   return wrk.format("POST", wrk.path, headers, mine[position])
end

function done(summary, latency, requests)
   local exhausted_threads = 0
   for _, thread in ipairs(threads) do
      exhausted_threads = exhausted_threads + (thread:get("exhausted") or 0)
   end
   local e = summary.errors
   io.write(string.format(
      '{"requests": %d, "duration_us": %d, "status_errors": %d, "socket_errors": %d, ' ..
      '"p50_us": %d, "p99_us": %d, "exhausted_threads": %d}\n',
      summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
      latency:percentile(50), latency:percentile(99), exhausted_threads))
end
