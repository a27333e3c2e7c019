-- PATCH /ngsi-ld/v1/entities/{id}/attrs with a changing value, cycling over the seeded entities.
package.path = package.path .. ";" .. (os.getenv("BURGO_BENCH_DIR") or "bench") .. "/?.lua"
require("common")

local n = nil
local body_format = '{"no2":{"type":"Property","value":%d,"unitCode":"GQ",' ..
   '"observedAt":"2024-05-01T10:%02d:%02dZ"},' ..
   '"pm10":{"type":"Property","value":%d.5,"unitCode":"GQ"}}'

function init(args)
   ENTITY_COUNT = tonumber(args[1]) or ENTITY_COUNT
   n = thread_id * 7919
end

function request()
   n = n + 1
   local body = string.format(body_format, n % 400, math.floor(n / 60) % 60, n % 60, n % 97)
   return wrk.format("PATCH", entity_path(n) .. "/attrs",
      {["Content-Type"] = "application/json"}, body)
end
