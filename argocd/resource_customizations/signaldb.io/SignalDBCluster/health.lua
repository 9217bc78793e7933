-- Argo CD health check for SignalDBCluster (signaldb.io/v1alpha1).
--
-- Argo CD runs this with the live object in the global `obj` and expects a
-- table with `status` (Healthy, Progressing, Degraded, Suspended) and
-- `message`. The first rule that matches decides:
--
--   1. spec.paused is true                            -> Suspended
--   2. no status yet, or status.observedGeneration
--      missing or behind metadata.generation          -> Progressing
--   3. condition Degraded is "True"                   -> Degraded
--   4. condition Progressing is "True"                -> Progressing
--   5. condition Ready is "True"                      -> Healthy
--   6. otherwise (Ready "False", "Unknown", missing)  -> Progressing
--
-- Every field is read defensively: a missing map, a JSON null or a value of
-- the wrong type counts as absent. Messages depend only on the object, so
-- the same object always gives the same result.

local function as_table(v)
  if type(v) == "table" then
    return v
  end
  return nil
end

local function as_string(v)
  if type(v) == "string" then
    return v
  end
  return ""
end

local function as_number(v)
  if type(v) == "number" then
    return v
  end
  if type(v) == "string" then
    return tonumber(v)
  end
  return nil
end

-- Whole numbers print without a decimal point whatever the Lua flavour.
local function show_number(n)
  if n % 1 == 0 then
    return string.format("%d", n)
  end
  return tostring(n)
end

local function find_condition(conditions, wanted)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if type(c) == "table" and c.type == wanted then
      return c
    end
  end
  return nil
end

-- "<reason>: <message>", or whichever of the two is set, or the fallback.
local function describe(c, fallback)
  local reason = as_string(c.reason)
  local message = as_string(c.message)
  if reason ~= "" and message ~= "" then
    return reason .. ": " .. message
  end
  if message ~= "" then
    return message
  end
  if reason ~= "" then
    return reason
  end
  return fallback
end

local hs = {}

local resource = as_table(obj) or {}
local metadata = as_table(resource.metadata) or {}
local spec = as_table(resource.spec) or {}
local status = as_table(resource.status)

-- 1. Paused: the operator changes nothing, whatever the conditions say.
if spec.paused == true then
  hs.status = "Suspended"
  hs.message = "Reconciliation is paused (spec.paused is true): the operator changes nothing until it is set to false"
  return hs
end

-- 2. The status must describe the current spec before it means anything.
local generation = as_number(metadata.generation)
local observed = nil
if status ~= nil then
  observed = as_number(status.observedGeneration)
end
if status == nil or observed == nil or (generation ~= nil and observed < generation) then
  hs.status = "Progressing"
  if generation ~= nil then
    hs.message = "Waiting for the operator to observe generation " .. show_number(generation)
  else
    hs.message = "Waiting for the operator to report status"
  end
  return hs
end

local conditions = as_table(status.conditions)

-- 3. Something needs a person.
local degraded = find_condition(conditions, "Degraded")
if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(degraded, "Degraded")
  return hs
end

-- 4. A rollout, a writer drain or a StatefulSet recreation is under way.
local progressing = find_condition(conditions, "Progressing")
if progressing ~= nil and progressing.status == "True" then
  hs.status = "Progressing"
  hs.message = describe(progressing, "Progressing")
  return hs
end

-- 5. and 6. Every pod of every role ready, or not yet.
local ready = find_condition(conditions, "Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  local message = as_string(ready.message)
  if message == "" then
    message = "All replicas are ready"
  end
  hs.message = message
  return hs
end

hs.status = "Progressing"
if ready ~= nil then
  hs.message = describe(ready, "Waiting for conditions")
else
  hs.message = "Waiting for conditions"
end
return hs
