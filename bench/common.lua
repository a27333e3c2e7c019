-- Shared by the entity benchmarks: gives each wrk thread a number (thread_id) so that
-- the requests of different threads spread over different entities and never collide.
local counter = 0
local threads = {}

function setup(thread)
   thread:set("thread_id", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

ENTITY_PREFIX = "urn:ngsi-ld:AirQualityObserved:bench-"
ENTITY_COUNT = 1000

function entity_path(n)
   return string.format("/ngsi-ld/v1/entities/%s%04d", ENTITY_PREFIX, n % ENTITY_COUNT)
end
