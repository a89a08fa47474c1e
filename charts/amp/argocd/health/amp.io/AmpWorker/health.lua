-- Argo CD health for amp.io/AmpWorker (kstatus conditions written by amp-operator).
local hs = {}
-- "Reason: message", tolerating a condition written without either.
local function describe(c)
  if c.reason == nil or c.reason == "" then
    return c.message or ""
  end
  return c.reason .. ": " .. (c.message or "")
end
if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and (obj.status.observedGeneration == nil or obj.status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. generation
  return hs
end
local conditions = {}
for _, c in ipairs(obj.status.conditions) do
  conditions[c.type] = c
end
local ready = conditions["Ready"]
if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ready condition"
  return hs
end
if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message
  return hs
end
if ready.status == "Unknown" then
  -- The metadata DB cannot be read: health is unknown, not bad. Progressing keeps a DB
  -- outage from turning every Application Degraded (Argo CD ranks Unknown worst).
  hs.status = "Progressing"
  hs.message = ready.message
  return hs
end
if ready.reason == "WorkerStopped" then
  -- No process holds the node id: stopped on purpose (scale-down, retirement) or its
  -- session is gone. Not an alarm by itself; a hung worker (Stale) is.
  hs.status = "Suspended"
  hs.message = describe(ready)
  return hs
end
hs.status = "Degraded"
hs.message = describe(ready)
return hs
