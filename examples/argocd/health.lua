-- Argo CD health of a Tributary object (Topic, Queue, Subscription, Consumer, DeviceStream, DeadLetter),
-- from its conditions:
--   Progressing  being deleted, not yet observed by the controller (no status, or observedGeneration
--                behind metadata.generation), or not ready for a reason that resolves itself (a dependency
--                not ready yet, the cloud or the API server unavailable: the controller retries);
--   Degraded     not ready for a reason that needs someone to act: a change of the spec (invalid spec or
--                filter, an immutable field changed) or outside it (the cloud refused, a name taken by
--                another resource, a TenantPolicy forbids it, a conflicting child), a Consumer whose
--                workers do not come up, or a provider without a controller. The controller re-checks the
--                conditions the cloud can lift at every resync;
--   Healthy      Ready=True for the current generation.
local hs = {}

local function condition(conditions, type)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == type then
      return c
    end
  end
  return nil
end

local permanent = {
  InvalidSpec = true,
  InvalidFilter = true,
  CloudRejected = true,
  ImmutableChange = true,
  AlreadyExists = true,
  OwnedByAnother = true,
  Forbidden = true,
  ChildConflict = true,
  Degraded = true,
  ProviderNotImplemented = true,
}

if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Deleting: the controller is removing the cloud resource"
  return hs
end

local status = obj.status
local ready = nil
if status ~= nil then
  ready = condition(status.conditions, "Ready")
end
if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the controller to report the Ready condition"
  return hs
end

local generation = obj.metadata.generation
local observed = status.observedGeneration
if ready.observedGeneration ~= nil then
  observed = ready.observedGeneration
end
if generation ~= nil and observed ~= nil and observed < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the controller to observe generation " .. tostring(generation)
  return hs
end

local message = ready.message or ""
if ready.reason ~= nil and ready.reason ~= "" then
  message = ready.reason .. ": " .. message
end
if ready.status == "True" then
  hs.status = "Healthy"
elseif permanent[ready.reason] then
  hs.status = "Degraded"
else
  hs.status = "Progressing"
end
hs.message = message
return hs
