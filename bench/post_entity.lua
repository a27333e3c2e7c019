-- POST /ngsi-ld/v1/entities with a new unique id each time (args[1] names the run).
package.path = package.path .. ";" .. (os.getenv("BURGO_BENCH_DIR") or "bench") .. "/?.lua"
require("common")

local n = 0
local run = "run"
local body_format = '{"id":"urn:ngsi-ld:AirQualityObserved:post-%s-%d-%d",' ..
   '"type":"AirQualityObserved",' ..
   '"no2":{"type":"Property","value":%d,"unitCode":"GQ","observedAt":"2024-05-01T10:00:00Z"},' ..
   '"pm10":{"type":"Property","value":%d,"unitCode":"GQ"},' ..
   '"temperature":{"type":"Property","value":17.5,"unitCode":"CEL"},' ..
   '"airQualityLevel":{"type":"Property","value":"moderate"},' ..
   '"location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[-7.5,40.1]}},' ..
   '"refDevice":{"type":"Relationship","object":"urn:ngsi-ld:Device:post-%d"}}'

function init(args)
   run = args[1] or run
end

function request()
   n = n + 1
   local body = string.format(body_format, run, thread_id, n, n % 400, n % 97, thread_id)
   return wrk.format("POST", "/ngsi-ld/v1/entities",
      {["Content-Type"] = "application/json"}, body)
end
