-- Argo CD health check for database.example.com/Database.
--
-- Argo CD runs scripts from argocd-cm without the Lua standard libraries
-- unless resource.customizations.useOpenLibs.database.example.com_Database is
-- true: string, math, io and the full os are missing (only the base, table,
-- package and a restricted os library are opened). This script calls no
-- function at all, not even pairs, ipairs, tostring or type, so it runs even
-- in a Lua VM with no library whatsoever. It reads only the global obj and
-- uses plain syntax: numeric for loops with #, .. and comparisons.
--
-- Source of truth: charts/database-operator/argocd/health/database.example.com/
-- Database/health.lua. The copy in charts/database-operator/argocd/argocd-cm.yaml
-- must stay byte-identical; internal/argocdhealth's tests check that (and
-- rewrite the copy with -update) and run every case of health_test.yaml.

local hs = {}

-- condition returns the condition of the given type, or nil.
local function condition(conditions, conditionType)
  if conditions == nil then
    return nil
  end
  for i = 1, #conditions do
    local c = conditions[i]
    if c ~= nil and c.type == conditionType then
      return c
    end
  end
  return nil
end

-- describe joins a condition's reason and message as "reason: message",
-- leaving out whichever is missing; fallback when both are.
local function describe(c, fallback)
  local reason = c.reason
  local message = c.message
  if reason == "" then
    reason = nil
  end
  if message == "" then
    message = nil
  end
  if reason ~= nil and message ~= nil then
    return reason .. ": " .. message
  end
  if message ~= nil then
    return message
  end
  if reason ~= nil then
    return reason
  end
  return fallback
end

-- Conditions are only worth reading once the operator has observed the
-- current generation of the spec.
local status = obj.status
local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end
if status == nil or status.observedGeneration == nil or status.observedGeneration ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end

local phase = status.phase
if phase == nil or phase == "" then
  phase = "Unknown"
end

local degraded = condition(status.conditions, "Degraded")
if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(degraded, "Database phase " .. phase)
  return hs
end

local ready = condition(status.conditions, "Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  if ready.message ~= nil and ready.message ~= "" then
    hs.message = ready.message
  else
    hs.message = "Database phase " .. phase
  end
  return hs
end

hs.status = "Progressing"
local progressing = condition(status.conditions, "Progressing")
if progressing ~= nil and progressing.status == "True" then
  hs.message = describe(progressing, "Database phase " .. phase)
elseif ready ~= nil and ready.message ~= nil and ready.message ~= "" then
  hs.message = "Database phase " .. phase .. ": " .. ready.message
else
  hs.message = "Database phase " .. phase
end
return hs
