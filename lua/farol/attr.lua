-- Attribution front ends: Captum's call forms in Lua.  The work is done in C
-- (farol._saliency: target selection, the gradient, abs).
local farol = require("farol")

local function is_callable(f)
  if type(f) == "function" then return true end
  local mt = getmetatable(f)
  return mt ~= nil and type(mt) == "table" and mt.__call ~= nil
end

local option_keys = {target = true, abs = true, additional_forward_args = true}

-- An options table is a table with no metatable whose keys are all option
-- names, so {} is one and {1, 5, 10} (a per-example target) is not.
local function is_options(t)
  if type(t) ~= "table" or getmetatable(t) ~= nil then return false end
  for k in pairs(t) do
    if not option_keys[k] then return false end
  end
  return true
end

-- Additional forward args, packed as {n = count, ...}:
--   nil            -> nothing
--   a plain array  -> its elements, spread after the inputs (Captum's tuple);
--                     a field n (as table.pack makes) gives the count, so nils
--                     can be passed; otherwise #t is used
--   anything else  -> passed as one argument
local function pack_args(args)
  if args == nil then return {n = 0} end
  if type(args) == "table" and getmetatable(args) == nil then
    local n = args.n
    if n == nil then n = #args end
    if math.type(n) ~= "integer" or n < 0 or n > 4096 then
      error("farol: Saliency: additional_forward_args.n must be an integer from 0 to 4096, got "
            .. (type(n) == "number" and tostring(n) or type(n)), 0)
    end
    return table.move(args, 1, n, 1, {n = n})
  end
  return {n = 1, args}
end

local Saliency = {}
Saliency.__index = Saliency
Saliency.__name = "farol.Saliency"

function Saliency:__tostring()
  return "farol.Saliency(" .. tostring(self.forward_func) .. ")"
end

-- sal:attribute(inputs [, target [, abs [, additional_forward_args]]])
-- sal:attribute(inputs, {target = ..., abs = ..., additional_forward_args = ...})
function Saliency:attribute(inputs, target, abs, additional_forward_args, ...)
  if getmetatable(self) ~= Saliency then
    error("farol: Saliency:attribute: call it as sal:attribute(inputs, ...)", 0)
  end
  if select("#", ...) > 0 then
    error("farol: Saliency:attribute: at most 4 arguments (inputs, target, abs, additional_forward_args)", 0)
  end
  if is_options(target) and abs == nil and additional_forward_args == nil then
    target, abs, additional_forward_args = target.target, target.abs, target.additional_forward_args
  end
  return farol._saliency(self.forward_func, inputs, target, abs, pack_args(additional_forward_args))
end

function farol.Saliency(forward_func)
  if not is_callable(forward_func) then
    error("farol: Saliency: forward_func must be a function or a callable table, got "
          .. type(forward_func), 0)
  end
  return setmetatable({forward_func = forward_func}, Saliency)
end

return Saliency
