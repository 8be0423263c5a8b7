-- farol.nn: modules as Lua tables.  A field holding a module is a child
-- named by its field; self:parameter(name, t) and self:buffer(name, t)
-- register tensors.  Names follow PyTorch's state_dict keys, so weights
-- exported from PyTorch load unchanged.
local farol = require("farol")

local nn = {functional = {}}

local function fail(fmt, ...)
  error("farol: " .. string.format(fmt, ...), 0)
end
nn._fail = fail

-- opts: nil or a table whose keys are all in the array `valid` (the shared
-- check, farol.check_options, raises naming the unknown key); returns opts or {}
local function check_opts(fn, opts, valid)
  return farol.check_options(opts, fn, valid)
end
nn._check_opts = check_opts

-- ---------------------------------------------------------------- Module

local Module = {}
Module.__name = "farol.nn.Module"
nn.Module = Module

local function is_module(v)
  return type(v) == "table" and rawget(v, "_children") ~= nil
end
nn.is_module = is_module

-- Instances remember the order in which fields were first set, so children
-- and parameters iterate in definition order, as in PyTorch.
local function track(self, k, v)
  if type(k) == "string" and rawget(self, "_seen") and not self._seen[k] then
    self._seen[k] = true
    self._order[#self._order + 1] = k
  end
  rawset(self, k, v)
end

-- Stray arguments: a constructor (init) or forward with fixed parameters
-- refuses more arguments than it names, listing the names (a vararg
-- function takes anything).  The parameter names are read once per function.
local fixed_params = setmetatable({}, {__mode = "k"})

local function params_of(f)
  local names = fixed_params[f]
  if names == nil then
    local info = debug.getinfo(f, "Su")
    names = false
    if info.what == "Lua" and not info.isvararg then
      names = {}
      for i = 2, info.nparams do names[#names + 1] = debug.getlocal(f, i) end
    end
    fixed_params[f] = names
  end
  return names
end

-- ...: the arguments after self; trailing nils count as absent, as in Lua
local function check_arity(obj, what, f, ...)
  if type(f) ~= "function" then return end
  local names = params_of(f)
  local n = select("#", ...)
  if names and n > #names then
    while n > #names and select(n, ...) == nil do n = n - 1 end
  end
  if names and n > #names then
    local cname = getmetatable(obj).__name or "Module"
    if rawget(nn, cname) == getmetatable(obj) then cname = "nn." .. cname end
    if #names == 0 then fail("%s: %s takes no arguments, got %d", cname, what, n) end
    fail("%s: %s takes at most %d argument%s (%s), got %d", cname, what, #names, #names == 1 and "" or "s",
         table.concat(names, ", "), n)
  end
end

local function new_instance(class, t)
  local self = t or {}
  rawset(self, "_children", true)
  rawset(self, "_params", {})
  rawset(self, "_buffers", {})
  rawset(self, "_seen", {})
  rawset(self, "_order", {})
  rawset(self, "training", true)
  -- adopted fields (instance form) have no order of their own: sort them
  local keys = {}
  for k in pairs(self) do
    if type(k) == "string" and k:sub(1, 1) ~= "_" then keys[#keys + 1] = k end
  end
  table.sort(keys)
  for _, k in ipairs(keys) do
    self._seen[k] = true
    self._order[#self._order + 1] = k
  end
  return setmetatable(self, class)
end

-- Class form: local Net = farol.nn.Module:extend(); function Net:init(...) end
function Module:extend(name)
  local class = {}
  for k, v in pairs(self) do
    if type(k) == "string" and k:sub(1, 2) == "__" then class[k] = v end
  end
  class.__index = class
  class.__newindex = track
  class.__name = name or "Module"
  class.super = self
  return setmetatable(class, {__index = self, __call = function(cls, ...)
    local obj = new_instance(cls)
    if cls.init then
      check_arity(obj, "the constructor", cls.init, ...)
      cls.init(obj, ...)
    end
    return obj
  end})
end

Module.__index = Module
Module.__newindex = track
Module.__call = function(self, ...)
  local forward = self.forward
  if not forward then fail("%s has no forward method", self.__name or "module") end
  check_arity(self, "forward", forward, ...)
  local hooks = rawget(self, "_forward_hooks")
  if not hooks or #hooks._order == 0 then return forward(self, ...) end
  -- as PyTorch: hook(module, inputs, output) after the forward; a value it
  -- returns replaces the output
  local inputs = table.pack(...)
  local out = forward(self, ...)
  for _, id in ipairs({table.unpack(hooks._order)}) do  -- a hook may remove hooks
    local fn = hooks[id]
    if fn then
      local r = fn(self, inputs, out)
      if r ~= nil then out = r end
    end
  end
  return out
end

-- m:register_forward_hook(function(module, inputs, output) ... end) -> a
-- handle whose :remove() takes the hook off again
local Handle = {__name = "farol.nn.HookHandle"}
Handle.__index = Handle
function Handle:remove()
  local hooks = rawget(self.module, "_forward_hooks")
  if not hooks or not hooks[self.id] then return end
  hooks[self.id] = nil
  for i, id in ipairs(hooks._order) do
    if id == self.id then
      table.remove(hooks._order, i)
      break
    end
  end
end

local next_hook_id = 0
function Module:register_forward_hook(fn)
  if type(fn) ~= "function" and not (getmetatable(fn) and getmetatable(fn).__call) then
    fail("register_forward_hook: expects a function, got %s", type(fn))
  end
  local hooks = rawget(self, "_forward_hooks")
  if not hooks then
    hooks = {_order = {}}
    rawset(self, "_forward_hooks", hooks)
  end
  next_hook_id = next_hook_id + 1
  hooks[next_hook_id] = fn
  hooks._order[#hooks._order + 1] = next_hook_id
  return setmetatable({module = self, id = next_hook_id}, Handle)
end

-- a child pointing back at an ancestor prints as "<cycle>"
local function describe(self, on)
  local lines = {(getmetatable(self).__name or "Module") .. "("}
  on[self] = true
  for _, name in ipairs(self._order) do
    local v = rawget(self, name)
    if is_module(v) then
      local own = getmetatable(v).__tostring ~= Module.__tostring
      local text = on[v] and "<cycle>" or (own and tostring(v) or describe(v, on)):gsub("\n", "\n  ")
      lines[#lines + 1] = "  (" .. name .. "): " .. text
    end
  end
  on[self] = nil
  if #lines == 1 then return lines[1] .. ")" end
  lines[#lines + 1] = ")"
  return table.concat(lines, "\n")
end

Module.__tostring = function(self) return describe(self, {}) end

-- Instance form: farol.nn.Module{fc1 = ..., forward = function(self, x) ... end}
setmetatable(Module, {__call = function(_, t)
  if type(t) ~= "table" then fail("nn.Module: expects a table of fields, got %s", type(t)) end
  return new_instance(Module, t)
end})

function Module:parameter(name, t)
  if type(name) ~= "string" then fail("parameter: name must be a string, got %s", type(name)) end
  if t ~= nil and not farol.is_tensor(t) then fail("parameter: %s must be a tensor, got %s", name, type(t)) end
  if t ~= nil and t:dtype() == "int64" then fail("parameter: %s must be floating, got int64", name) end
  if t ~= nil and not t:requires_grad() then t:requires_grad(true) end
  self._params[name] = t ~= nil
  track(self, name, t)
  return t
end

function Module:buffer(name, t)
  if type(name) ~= "string" then fail("buffer: name must be a string, got %s", type(name)) end
  if t ~= nil and not farol.is_tensor(t) then fail("buffer: %s must be a tensor, got %s", name, type(t)) end
  self._buffers[name] = t ~= nil
  track(self, name, t)
  return t
end

-- children in order: iterator of name, module
function Module:named_children()
  local i, order = 0, self._order
  return function()
    while i < #order do
      i = i + 1
      local name = order[i]
      local v = rawget(self, name)
      if is_module(v) then return name, v end
    end
  end
end

-- Calls fn(module, prefix) for self and its descendants, depth first.  As
-- PyTorch's named_modules, a module reachable by several paths is visited
-- once (by its first path); with per_path (state_dict's walk) it is visited
-- on every path, as PyTorch's state_dict does.  Either way a child pointing
-- back at an ancestor is not followed, so a cyclic graph cannot loop.
local MAX_PATHS = 1000000
local function walk(self, fn, per_path)
  local on, visits = {}, 0
  local function visit(m, prefix)
    if on[m] then return end
    on[m] = true
    visits = visits + 1
    if visits > MAX_PATHS then
      fail("state_dict: the module graph has over %d paths (modules shared along many paths)", MAX_PATHS)
    end
    fn(m, prefix)
    for name, child in m:named_children() do visit(child, prefix .. name .. ".") end
    if per_path then on[m] = nil end
  end
  visit(self, "")
end

-- every registered tensor of a kind ("_params" or "_buffers"), depth first:
-- {name, tensor, owner, field}.  Outside per_path, a tensor registered
-- twice is listed once, as PyTorch's named_parameters.
local function collect(self, kind, per_path)
  local out, seen = {}, {}
  walk(self, function(m, prefix)
    for _, name in ipairs(m._order) do
      local t = rawget(m, name)
      if m[kind][name] and (per_path or t == nil or not seen[t]) then
        if t ~= nil then seen[t] = true end
        out[#out + 1] = {prefix .. name, t, m, name}
      end
    end
  end, per_path)
  return out
end

-- for name, p in m:named_parameters() do ... end
function Module:named_parameters()
  local list, i = collect(self, "_params"), 0
  return function()
    i = i + 1
    if list[i] then return list[i][1], list[i][2] end
  end
end

function Module:parameters()
  local out = {}
  for _, e in ipairs(collect(self, "_params")) do out[#out + 1] = e[2] end
  return out
end

function Module:named_buffers()
  local list, i = collect(self, "_buffers"), 0
  return function()
    i = i + 1
    if list[i] then return list[i][1], list[i][2] end
  end
end

-- parameters and buffers; per_path: under every name, as state_dict
local function entries(self, per_path)
  local all = collect(self, "_params", per_path)
  for _, e in ipairs(collect(self, "_buffers", per_path)) do all[#all + 1] = e end
  return all
end

-- name -> tensor (detached views sharing the module's memory)
function Module:state_dict()
  local out = {}
  for _, e in ipairs(entries(self, true)) do out[e[1]] = e[2]:detach() end
  return out
end

local function shape_str(t)
  return "[" .. table.concat(t:size(), ", ") .. "]"
end

-- Copies tensors from t into the module's own (shapes must match; values
-- are converted to the module's dtype).  strict (default true): missing or
-- unexpected keys are an error.  Returns {missing = {...}, unexpected = {...}}.
function Module:load_state_dict(t, opts)
  if type(t) ~= "table" then fail("load_state_dict: expects a table of name -> tensor, got %s", type(t)) end
  opts = check_opts("load_state_dict", opts, {"strict"})
  if opts.strict ~= nil and type(opts.strict) ~= "boolean" then
    fail("load_state_dict: strict must be a boolean, got %s", type(opts.strict))
  end
  local strict = opts.strict ~= false
  -- everything is checked before anything is copied, so a failing call
  -- leaves the module as it was
  local expected, missing, unexpected, copies = {}, {}, {}, {}
  for _, e in ipairs(entries(self, true)) do
    expected[e[1]] = e
    local src = t[e[1]]
    if src == nil then
      missing[#missing + 1] = e[1]
    elseif not farol.is_tensor(src) then
      fail("load_state_dict: %s is a %s, expected a tensor", e[1], type(src))
    else
      local dst = e[2]
      if not dst then fail("load_state_dict: %s is not allocated in the model", e[1]) end
      if shape_str(src) ~= shape_str(dst) then
        fail("load_state_dict: size mismatch for %s: checkpoint has %s, model has %s",
             e[1], shape_str(src), shape_str(dst))
      end
      copies[#copies + 1] = {dst, src}
    end
  end
  for k in pairs(t) do
    if not expected[k] then unexpected[#unexpected + 1] = tostring(k) end
  end
  table.sort(missing)
  table.sort(unexpected)
  if strict and (#missing > 0 or #unexpected > 0) then
    local parts = {}
    if #missing > 0 then parts[#parts + 1] = "missing keys: " .. table.concat(missing, ", ") end
    if #unexpected > 0 then parts[#parts + 1] = "unexpected keys: " .. table.concat(unexpected, ", ") end
    fail("load_state_dict: %s", table.concat(parts, "; "))
  end
  farol.no_grad(function()
    for _, c in ipairs(copies) do c[1]:copy_(c[2]) end
  end)
  return {missing = missing, unexpected = unexpected}
end

local function set_training(self, on)
  walk(self, function(m) rawset(m, "training", on) end)
  return self
end

function Module:train(on)
  if on == nil then on = true end
  return set_training(self, on and true or false)
end

function Module:eval() return set_training(self, false) end

-- converts floating parameters and buffers to dtype, in every descendant
function Module:to(dtype)
  if dtype ~= "float32" and dtype ~= "float64" then
    fail("Module:to: dtype must be \"float32\" or \"float64\", got %s", tostring(dtype))
  end
  for _, e in ipairs(entries(self)) do
    local t, owner, name = e[2], e[3], e[4]
    if t and t:dtype() ~= "int64" and t:dtype() ~= dtype then
      local converted = t:detach():to(dtype)
      if owner._params[name] then converted:requires_grad(true) end
      rawset(owner, name, converted)
    end
  end
  return self
end

function Module:zero_grad()
  for _, p in ipairs(self:parameters()) do p:zero_grad() end
  return self
end

-- -------------------------------------------------------- simple modules

-- A module class whose forward is fn(self, x, ...).
local function simple(name, fn, init)
  local class = Module:extend(name)
  class.forward = fn
  if init then class.init = init end
  nn[name] = class
  return class
end
nn._simple = simple

-- U(-bound, bound), PyTorch's default for Linear and Conv (kaiming_uniform
-- with a = sqrt(5) gives bound = 1/sqrt(fan_in))
local function uniform(bound, ...)
  return farol.rand(...) * (2 * bound) - bound
end
nn._uniform = uniform

local function check_int(fn, name, v, min)
  if math.type(v) ~= "integer" or v < (min or 1) then
    fail("%s: %s must be an integer >= %d, got %s", fn, name, min or 1, tostring(v))
  end
end
nn._check_int = check_int

simple("Linear", function(self, x) return farol.linear(x, self.weight, self.bias) end,
  function(self, in_features, out_features, opts)
    opts = check_opts("nn.Linear", opts, {"bias"})
    check_int("nn.Linear", "in_features", in_features, 0)
    check_int("nn.Linear", "out_features", out_features, 0)
    local bound = in_features > 0 and 1 / math.sqrt(in_features) or 0
    self.in_features, self.out_features = in_features, out_features
    self:parameter("weight", uniform(bound, out_features, in_features))
    if opts.bias ~= false then
      self:parameter("bias", uniform(bound, out_features))
    end
  end)

-- Element-wise activations take one input; a stray argument is an error.
-- Constructors take PyTorch's arguments: `inplace` (a boolean, accepted and
-- without effect: farol's results are the same either way) where PyTorch
-- has it, and the function's own parameters.
local function one_input(name, op)
  return function(self, x, ...)
    if select("#", ...) > 0 then
      fail("nn.%s: forward takes one input, got %d arguments", name, 1 + select("#", ...))
    end
    return op(self, x)
  end
end

-- init(self, ...) checking that the arguments are at most the given
-- parameters (numbers) followed by an optional boolean inplace
local function activation_args(name, params, inplace)
  return function(self, ...)
    local n, max = select("#", ...), #params + (inplace and 1 or 0)
    if n > max and max == 0 then fail("nn.%s: takes no arguments, got %d", name, n) end
    if n > max then
      fail("nn.%s: takes at most %d argument%s (%s), got %d", name, max, max == 1 and "" or "s",
           table.concat(params, ", ") .. (inplace and (#params > 0 and ", " or "") .. "inplace" or ""), n)
    end
    for i, p in ipairs(params) do
      local v = select(i, ...)
      if v ~= nil and type(v) ~= "number" then fail("nn.%s: %s must be a number, got %s", name, p, type(v)) end
      self[p] = v
    end
    local ip = select(#params + 1, ...)
    if ip ~= nil and type(ip) ~= "boolean" then fail("nn.%s: inplace must be a boolean, got %s", name, type(ip)) end
  end
end

local function activation(name, op, params, inplace, defaults)
  local init = activation_args(name, params or {}, inplace)
  simple(name, one_input(name, op), function(self, ...)
    init(self, ...)
    for k, v in pairs(defaults or {}) do
      if self[k] == nil then self[k] = v end
    end
  end)
end

activation("ReLU", function(_, x) return farol.relu(x) end, nil, true)
activation("Sigmoid", function(_, x) return farol.sigmoid(x) end)
activation("Tanh", function(_, x) return farol.tanh(x) end)
activation("SiLU", function(_, x) return farol.silu(x) end, nil, true)
activation("ReLU6", function(_, x) return farol.relu6(x) end, nil, true)
activation("Hardswish", function(_, x) return farol.hardswish(x) end, nil, true)
activation("Hardsigmoid", function(_, x) return farol.hardsigmoid(x) end, nil, true)
activation("LeakyReLU", function(self, x) return farol.leaky_relu(x, self.negative_slope) end,
           {"negative_slope"}, true, {negative_slope = 0.01})
activation("ELU", function(self, x) return farol.elu(x, self.alpha) end, {"alpha"}, true, {alpha = 1.0})
simple("Identity", function(_, x) return x end)  -- PyTorch's Identity ignores its arguments too

-- GELU([approximate = "none"]): the exact (erf) form only
simple("GELU", one_input("GELU", function(_, x) return farol.gelu(x) end), function(self, approximate, ...)
  if select("#", ...) > 0 then fail("nn.GELU: takes at most 1 argument (approximate), got %d", 1 + select("#", ...)) end
  if approximate ~= nil and approximate ~= "none" then
    fail("nn.GELU: approximate must be \"none\" (farol has the exact form only), got %s", tostring(approximate))
  end
end)

simple("Softmax", function(self, x) return farol.softmax(x, self.dim) end,
  function(self, dim)
    if math.type(dim) ~= "integer" then fail("nn.Softmax: dim must be an integer, got %s", tostring(dim)) end
    self.dim = dim
  end)

simple("LogSoftmax", function(self, x) return farol.log_softmax(x, self.dim) end,
  function(self, dim)
    if math.type(dim) ~= "integer" then fail("nn.LogSoftmax: dim must be an integer, got %s", tostring(dim)) end
    self.dim = dim
  end)

simple("Flatten", function(self, x)
    local e = self.end_dim
    if e < 0 then e = x:dim() + 1 + e end
    return x:flatten(self.start_dim, e)
  end,
  function(self, start_dim, end_dim)
    self.start_dim, self.end_dim = start_dim or 2, end_dim or -1
  end)

-- nn.Sequential(m1, m2, ...): children named "0", "1", ... as in PyTorch;
-- nn.Sequential{{"conv", m1}, {"relu", m2}}: named children, PyTorch's
-- OrderedDict form (state_dict keys conv.weight ...).  Calls run in order.
local function add_child(self, fn, name, m, where)
  if not is_module(m) then fail("%s: %s is a %s, expected a module", fn, where, type(m)) end
  if type(name) ~= "string" or name == "" or name:find(".", 1, true) or name:sub(1, 1) == "_" then
    fail("%s: %s: a child name must be a non-empty string without \".\" or a leading \"_\", got %s",
         fn, where, type(name) == "string" and string.format("%q", name) or tostring(name))
  end
  if rawget(self, name) ~= nil or nn.Sequential[name] ~= nil then
    fail("%s: %s: the name %q is already taken", fn, where, name)
  end
  self[name] = m
  self._names[#self._names + 1] = name
end

simple("Sequential", function(self, x, ...)
    local names = self._names
    if #names == 0 then return x end
    local out = self[names[1]](x, ...)
    for i = 2, #names do out = self[names[i]](out) end
    return out
  end,
  function(self, ...)
    local fn, n = "nn.Sequential", select("#", ...)
    rawset(self, "_names", {})
    local first = ...
    if n == 1 and type(first) == "table" and not is_module(first) and getmetatable(first) == nil then
      for k in pairs(first) do
        if math.type(k) ~= "integer" or k < 1 or k > #first then
          fail("%s: expects modules, or one array of {name, module} pairs; got a table with key %s",
               fn, tostring(k))
        end
      end
      for i, pair in ipairs(first) do
        if type(pair) ~= "table" or is_module(pair) or #pair ~= 2 then
          fail("%s: entry %d must be a {name, module} pair, got %s", fn, i, type(pair))
        end
        add_child(self, fn, pair[1], pair[2], "entry " .. i)
      end
      return
    end
    for i = 1, n do add_child(self, fn, tostring(i - 1), (select(i, ...)), "argument " .. i) end
  end)

function nn.Sequential:__len() return #self._names end

-- the children's names in order
function nn.Sequential:names() return table.move(self._names, 1, #self._names, 1, {}) end

-- seq[i] is the i-th child (1-based; PyTorch's seq[i - 1])
local sequential_class = nn.Sequential.__index
nn.Sequential.__index = function(self, k)
  if math.type(k) == "integer" then
    local name = rawget(self, "_names")[k]
    return name and rawget(self, name)
  end
  return sequential_class[k]
end

-- ReLU6, Hardswish and Hardsigmoid follow PyTorch's values and gradients at
-- the kinks (ReLU6 and Hardsigmoid have gradient 0 at their corners, unlike
-- clamp): see src/ops/pointwise.c

-- the ops as nn.functional.*
for _, name in ipairs({"linear", "conv1d", "conv2d", "max_pool2d", "avg_pool2d",
    "adaptive_avg_pool2d", "batch_norm", "layer_norm", "softmax", "log_softmax", "embedding",
    "dropout", "cross_entropy", "mse_loss", "pad", "relu", "gelu", "sigmoid", "tanh", "silu",
    "softplus", "leaky_relu", "elu", "relu6", "hardswish", "hardsigmoid",
    "scaled_dot_product_attention"}) do
  nn.functional[name] = farol[name]
end

-- the larger layers live beside this file; each part adds its classes to nn
require("farol.nn.layers")(nn)
require("farol.nn.transformer")(nn)
require("farol.nn.recurrent")(nn)

return nn
