-- GET /ngsi-ld/v1/entities/{id}, cycling over the seeded entities.
package.path = package.path .. ";" .. (os.getenv("BURGO_BENCH_DIR") or "bench") .. "/?.lua"
require("common")

local n = nil

function init(args)
   ENTITY_COUNT = tonumber(args[1]) or ENTITY_COUNT
   n = thread_id * 7919
end

function request()
   n = n + 1
   return wrk.format("GET", entity_path(n), {["Accept"] = "application/json"})
end
