-- Argo CD health of tagbinder.io ResourceTagBinding and TagProvider, from their kstatus
-- conditions (Ready, Reconciling, Stalled, each with observedGeneration).
-- Runs on Lua 5.1 (Argo CD's gopher-lua) to 5.4: no goto, no integer division, no utf8.
local hs = {}

local function find_condition(conditions, kind)
  if conditions == nil then
    return nil
  end
  for _, condition in ipairs(conditions) do
    if condition.type == kind then
      return condition
    end
  end
  return nil
end

local function message_of(condition, fallback)
  if condition ~= nil and condition.message ~= nil and condition.message ~= "" then
    return condition.message
  end
  return fallback
end

local status = obj.status
local conditions = nil
if status ~= nil then
  conditions = status.conditions
end

if conditions == nil or #conditions == 0 then
  if obj.kind == "TagProvider" then
    -- tagbinder does not report the health of providers (yet): a provider without
    -- conditions is as healthy as its bindings show.
    hs.status = "Healthy"
    hs.message = "TagProvider has no conditions; its bindings report its health"
    return hs
  end
  hs.status = "Progressing"
  hs.message = "Waiting for the controller"
  return hs
end

local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = string.format("Waiting for the controller to observe generation %d", generation)
  return hs
end

local ready = find_condition(conditions, "Ready")
local stalled = find_condition(conditions, "Stalled")
local reconciling = find_condition(conditions, "Reconciling")

if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = message_of(stalled, message_of(ready, "Stalled"))
  return hs
end

-- An Observe binding (spec.mode: Observe) is Ready whenever it could look: its drift is a
-- finding (condition Drifted), not ill health, so that an audit never blocks a sync.
local drifted = find_condition(conditions, "Drifted")
if ready ~= nil and ready.status == "True" and drifted ~= nil then
  hs.status = "Healthy"
  if drifted.status == "True" then
    hs.message = "observe only, drifted: " .. message_of(drifted, "Drifted")
  else
    hs.message = "observe only: " .. message_of(drifted, "no drift")
  end
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = message_of(ready, "Ready")
  return hs
end

if ready ~= nil and ready.status == "False" and ready.reason == "Suspended" then
  hs.status = "Suspended"
  hs.message = message_of(ready, "Suspended")
  return hs
end

if (reconciling ~= nil and reconciling.status == "True") or (ready ~= nil and ready.status == "False") then
  hs.status = "Progressing"
  hs.message = message_of(reconciling, message_of(ready, "Reconciling"))
  return hs
end

hs.status = "Progressing"
hs.message = "Waiting for the controller"
return hs
