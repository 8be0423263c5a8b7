-- The attribution layer: one base that every gradient method is built on.
-- It parses a call once (inputs, the options table or a bare target,
-- additional_forward_args, target or targets), checks each option, and hands
-- the method a call record; the gradients come from the C core
-- (farol._attr_grad: forward on a possibly expanded batch, the target's
-- selection, the gradient w.r.t. the inputs or a layer).  Saliency and
-- InputXGradient live here; the other methods in lua/farol/attr/*.lua.
local farol = require("farol")

local A = {}

function A.fail(method, fmt, ...)
  error("farol: " .. method .. ": " .. string.format(fmt, ...), 0)
end
local fail = A.fail

-- how a value is shown in a message
function A.show(v)
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) == "number" then return tostring(v) end
  if farol.is_tensor(v) then return "a tensor" end
  return type(v)
end
local show = A.show

function A.is_callable(f)
  if type(f) == "function" then return true end
  local mt = getmetatable(f)
  return mt ~= nil and type(mt) == "table" and mt.__call ~= nil
end

-- The second argument is an options table when it is a table with no
-- metatable that has at least one string key, or is empty; a Lua array (only
-- integer keys) is a target.
function A.is_options(t)
  if type(t) ~= "table" or getmetatable(t) ~= nil then return false end
  if next(t) == nil then return true end
  for k in pairs(t) do
    if type(k) == "string" then return true end
  end
  return false
end

-- ------------------------------------------------------------- validators
-- Each takes (method, key, value) and returns the value to use.

A.check = {}

function A.check.boolean(m, k, v)
  if type(v) ~= "boolean" then fail(m, "%s must be a boolean, got %s", k, type(v)) end
  return v
end

function A.check.integer(min)
  return function(m, k, v)
    if math.type(v) ~= "integer" or v < min then
      fail(m, "%s must be an integer >= %d, got %s", k, min, show(v))
    end
    return v
  end
end

function A.check.one_of(...)
  local names = {...}
  local set, quoted = {}, {}
  for i, n in ipairs(names) do
    set[n] = true
    quoted[i] = string.format("%q", n)
  end
  return function(m, k, v)
    if not set[v] then
      fail(m, "%s must be one of %s, got %s", k, table.concat(quoted, ", "), show(v))
    end
    return v
  end
end

function A.check.any(_, _, v) return v end

-- options every method takes
local common = {
  target = {check = A.check.any},
  targets = {check = function(m, k, v)
    if type(v) ~= "table" or getmetatable(v) ~= nil or #v < 1 then
      fail(m, "targets must be a non-empty array of targets, got %s", show(v))
    end
    return v
  end},
  additional_forward_args = {check = A.check.any},
}

-- the names a spec knows, in order, for farol.check_options
local function option_names(spec)
  local names = {"target", "targets", "additional_forward_args"}
  for _, o in ipairs(spec.options) do names[#names + 1] = o.name end
  return names
end

-- checks every given option and fills in defaults; returns a new table
function A.read_options(m, spec, given)
  farol.check_options(given, m, option_names(spec))
  local o = {}
  for k, def in pairs(common) do
    if given[k] ~= nil then o[k] = def.check(m, k, given[k]) end
  end
  for _, def in ipairs(spec.options) do
    local v = given[def.name]
    if v == nil then o[def.name] = def.default
    else o[def.name] = def.check(m, def.name, v) end
  end
  if o.target ~= nil and o.targets ~= nil then
    fail(m, "give target or targets, not both")
  end
  return o
end

-- ------------------------------------------------------------ the inputs

-- inputs as a list; single when one tensor was given.  any_dtype: layer
-- methods take int64 inputs (token ids).  Messages as the C core's.
function A.read_inputs(m, inputs, any_dtype)
  local list, single
  if farol.is_tensor(inputs) then
    if not pcall(inputs.dim, inputs) then fail(m, "the input was freed") end
    list, single = {inputs}, true
  elseif type(inputs) == "table" then
    -- read raw: an inputs array's metamethods have no say in its entries
    local n = rawlen(inputs)
    if n < 1 then fail(m, "the inputs array is empty") end
    list = {}
    for i = 1, n do
      local x = rawget(inputs, i)
      if not farol.is_tensor(x) then fail(m, "input %d is a %s, expected farol.Tensor", i, type(x)) end
      if not pcall(x.dim, x) then fail(m, "input %d was freed", i) end
      list[i] = x
    end
  else
    fail(m, "inputs must be a farol.Tensor or an array of them, got %s", type(inputs))
  end
  for i, x in ipairs(list) do
    if x:dim() < 1 then fail(m, "input %d is 0-d; dim 1 must be the batch", i) end
    if not any_dtype and x:dtype() == "int64" then
      fail(m, "input %d is int64; attributions need floating inputs (float32 or float64)", i)
    end
    if x:size(1) ~= list[1]:size(1) then
      fail(m, "input %d has batch size %d but input 1 has %d (dim 1 is the batch and must agree)",
           i, x:size(1), list[1]:size(1))
    end
  end
  return list, single
end

-- Additional forward args, packed as {n = count, ...}:
--   nil            -> nothing
--   a plain array  -> its elements, spread after the inputs (Captum's tuple);
--                     a field n (as table.pack makes) gives the count, so nils
--                     can be passed; otherwise #t is used
--   anything else  -> passed as one argument
function A.pack_args(m, args)
  if args == nil then return {n = 0} end
  if type(args) == "table" and getmetatable(args) == nil then
    local n = rawget(args, "n")
    if n == nil then n = rawlen(args) end
    if math.type(n) ~= "integer" or n < 0 or n > 4096 then
      fail(m, "additional_forward_args.n must be an integer from 0 to 4096, got %s",
           type(n) == "number" and tostring(n) or type(n))
    end
    local out = {n = n}
    for i = 1, n do out[i] = rawget(args, i) end
    return out
  end
  return {n = 1, args}
end

-- ------------------------------------------------------------- expansion

-- x's rows repeated r times: as blocks (1..n, 1..n, ...; Captum's repeat)
-- or each row r times in a row (interleave; Captum's repeat_interleave)
function A.expand_rows(x, r, interleave)
  if r == 1 then return x end
  local s = x:size()
  local n = s[1]
  local big = interleave and {n, r} or {r, n}
  local flat = {n * r}
  for d = 2, #s do
    big[#big + 1] = s[d]
    flat[#flat + 1] = s[d]
  end
  return x:unsqueeze(interleave and 2 or 1):expand(big):reshape(flat)
end

-- Captum's rule for additional forward args: tensors with a dim are
-- expanded along it, everything else passes unchanged
function A.expand_args(args, r, interleave)
  if r == 1 then return args end
  local out = {n = args.n}
  for i = 1, args.n do
    local a = args[i]
    if farol.is_tensor(a) and a:dim() > 0 then a = A.expand_rows(a, r, interleave) end
    out[i] = a
  end
  return out
end

-- calls forward(inputs..., args...) and checks that it returned a tensor
function A.call_forward(m, forward, inputs, args)
  local all = {}
  for i, x in ipairs(inputs) do all[i] = x end
  for i = 1, args.n do all[#inputs + i] = args[i] end
  local out = forward(table.unpack(all, 1, #inputs + args.n))
  if not farol.is_tensor(out) then
    fail(m, "the forward function returned %s, expected a farol.Tensor", type(out))
  end
  return out
end

-- each example's selected output (n values), computed without recording
function A.selected_outputs(c, forward, inputs, args)
  return farol.no_grad(function()
    local out = A.call_forward(c.method, forward, inputs, args)
    return farol._attr_select(c.method, out, c.target, c.n)
  end)
end

-- per-example sums over every input: the attribution side of Captum's
-- convergence delta
function A.row_sums(attrs)
  local total
  for _, a in ipairs(attrs) do
    local n = a:size(1)
    local r = a:reshape(n, n > 0 and a:numel() // n or 0):sum(2)  -- no -1: 0 examples are fine
    total = total and total + r or r
  end
  return total
end

-- ------------------------------------------------------------ the classes

-- spec: {options = {{name, check, default}, ...}, positional = {names after
-- the target}, any_dtype = layer methods' int64 inputs, layer_result = one
-- tensor out, delta = name of the option asking for a delta,
-- run = function(self, c) -> list of attributions [, delta]}.
-- The call record c: method, inputs (list), n (examples, after a targets
-- expansion), target (parsed), args (packed), opts.
function A.define(name, spec)
  local class = {__name = "farol." .. name, _spec = spec, _method = name}
  class.__index = class
  class.__tostring = function(self)
    return "farol." .. name .. "(" .. tostring(self.forward_func) .. ")"
  end

  function class:attribute(inputs, second, ...)
    if getmetatable(self) ~= class then
      fail(name .. ":attribute", "call it as %s:attribute(inputs, ...)", spec.var or "obj")
    end
    return A.attribute(self, inputs, second, ...)
  end
  return class
end

function A.attribute(self, inputs, second, ...)
  local spec, m = self._spec, self._method
  local extra = select("#", ...)
  local given
  if A.is_options(second) then
    if extra > 0 then fail(m, "no arguments are taken after the options table (got %d more)", extra) end
    given = second
  else
    local pos = spec.positional or {}
    if extra > #pos then
      fail(m .. ":attribute", "at most %d arguments (inputs, target%s), got %d", 2 + #pos,
           #pos > 0 and ", " .. table.concat(pos, ", ") or "", 2 + extra)
    end
    given = {target = second}
    for i, k in ipairs(pos) do given[k] = (select(i, ...)) end
  end
  local o = A.read_options(m, spec, given)
  local xs, single = A.read_inputs(m, inputs, spec.any_dtype)
  local c = A.prepare(m, xs, o)
  local attrs, delta = spec.run(self, c)
  return A.finish(c, spec, attrs, delta, single)
end

-- the call record; with targets = {t1..tK}, the batch is expanded to K
-- blocks of the inputs, block k selecting target k
function A.prepare(m, xs, o)
  local n = xs[1]:size(1)
  local c = {method = m, opts = o, k = 1}
  c.args = A.pack_args(m, o.additional_forward_args)
  if o.targets ~= nil then
    local k = #o.targets
    c.k = k
    c.target = farol._attr_target(m, o.targets, n, true)
    c.inputs = {}
    for i, x in ipairs(xs) do c.inputs[i] = A.expand_rows(x, k, false) end
    c.args = A.expand_args(c.args, k, false)
    c.n = n * k
  else
    c.target = farol._attr_target(m, o.target, n)
    c.inputs, c.n = xs, n
  end
  return c
end

local function split_k(t, k)
  if k == 1 then return t end
  local s = t:size()
  local shape = {k, s[1] // k}
  for d = 2, #s do shape[#shape + 1] = s[d] end
  return t:reshape(shape)
end

function A.finish(c, spec, attrs, delta, single)
  for i, a in ipairs(attrs) do attrs[i] = split_k(a, c.k) end
  local out = (single or spec.layer_result) and attrs[1] or attrs
  if spec.delta and c.opts[spec.delta] then
    return out, split_k(delta, c.k)
  end
  return out
end

-- the gradients of the selected outputs w.r.t. each input (a list)
function A.gradients(c, forward, inputs, target, args)
  return farol._attr_grad(c.method, forward, inputs, target or c.target, args or c.args)
end

-- ------------------------------------------------------------ Saliency

local Saliency = A.define("Saliency", {
  var = "sal",
  options = {{name = "abs", check = A.check.boolean, default = true}},
  positional = {"abs", "additional_forward_args"},
  run = function(self, c)
    local grads = A.gradients(c, self.forward_func, c.inputs)
    for i, g in ipairs(grads) do grads[i] = c.opts.abs and g:abs() or g:clone() end
    return grads
  end,
})
A.Saliency = Saliency

function A.new(class, forward_func)
  if not A.is_callable(forward_func) then
    fail(class._method, "forward_func must be a function or a callable table, got %s", type(forward_func))
  end
  return setmetatable({forward_func = forward_func}, class)
end

function farol.Saliency(forward_func, ...)
  if select("#", ...) > 0 then fail("Saliency", "takes one argument (forward_func)") end
  return A.new(Saliency, forward_func)
end

-- ------------------------------------------------------- InputXGradient

local InputXGradient = A.define("InputXGradient", {
  options = {},
  positional = {"additional_forward_args"},
  run = function(self, c)
    local grads = A.gradients(c, self.forward_func, c.inputs)
    for i, g in ipairs(grads) do grads[i] = c.inputs[i] * g end
    return grads
  end,
})
A.InputXGradient = InputXGradient

function farol.InputXGradient(forward_func, ...)
  if select("#", ...) > 0 then fail("InputXGradient", "takes one argument (forward_func)") end
  return A.new(InputXGradient, forward_func)
end

package.loaded["farol.attr"] = A
require("farol.attr.ig")
require("farol.attr.noise_tunnel")
require("farol.attr.modified_relu")
require("farol.attr.layer")

return A
