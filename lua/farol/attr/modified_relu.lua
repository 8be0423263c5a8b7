-- GuidedBackprop and Deconvolution, as Captum: the gradient of the selected
-- outputs with the backward of every nn.ReLU module of the model replaced
-- for the duration of the call (GuidedBackprop: relu of the usual gradient;
-- Deconvolution: relu of the incoming gradient, the forward's mask ignored).
-- The modules' forward is swapped for farol._modified_relu and put back
-- afterwards, also when the forward raises; functional relu is untouched.
local farol = require("farol")
local A = require("farol.attr")
local fail = A.fail

local M = {}

-- every module under model (model included), each once
function M.modules(model)
  local out, seen = {}, {}
  local function walk(m)
    if seen[m] then return end
    seen[m] = true
    out[#out + 1] = m
    for _, child in m:named_children() do walk(child) end
  end
  walk(model)
  return out
end

-- runs fn() with the model's nn.ReLU modules overridden; restores them on
-- every path and passes fn's results or error on
function M.with_relu_override(model, deconv, fn)
  local relu_class = farol.nn.ReLU
  local saved = {}
  local forward = function(_, x) return farol._modified_relu(x, deconv) end
  for _, m in ipairs(M.modules(model)) do
    if getmetatable(m) == relu_class then
      saved[#saved + 1] = {m, rawget(m, "forward")}
      rawset(m, "forward", forward)
    end
  end
  local res = table.pack(pcall(fn))
  for _, s in ipairs(saved) do rawset(s[1], "forward", s[2]) end
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

function M.check_model(m, model)
  if not farol.nn.is_module(model) then
    fail(m, "model must be a farol.nn module (its nn.ReLU modules are overridden), got %s", type(model))
  end
end

-- the gradients with the overridden ReLUs, each a fresh tensor
function M.gradients(c, model, deconv)
  return M.with_relu_override(model, deconv, function()
    local grads = A.gradients(c, model, c.inputs)
    for i, g in ipairs(grads) do grads[i] = g:clone() end
    return grads
  end)
end

local function define(name, deconv)
  local class = A.define(name, {
    options = {},
    positional = {"additional_forward_args"},
    run = function(self, c) return M.gradients(c, self.model, deconv) end,
  })
  class.__tostring = function(self) return "farol." .. name .. "(" .. tostring(self.model) .. ")" end
  farol[name] = function(model, ...)
    if select("#", ...) > 0 then fail(name, "takes one argument (model)") end
    M.check_model(name, model)
    local self = setmetatable({model = model, forward_func = model}, class)
    return self
  end
  A[name] = class
end

define("GuidedBackprop", false)
define("Deconvolution", true)

A.modified_relu = M
return M
