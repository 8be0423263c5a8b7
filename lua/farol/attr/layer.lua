-- Layer methods, on module forward hooks, with Captum's semantics:
-- LayerGradCam (gradient w.r.t. a layer's output, averaged per channel,
-- times the activation, summed over channels), GuidedGradCam (Grad-CAM
-- upsampled to the input times GuidedBackprop), LayerIntegratedGradients
-- (IG on the layer's output, the model run on its own inputs with the
-- layer's output replaced), and LayerAttribution.interpolate.  Hooks are
-- removed on every path, also when the forward raises.
local farol = require("farol")
local A = require("farol.attr")
local IG = require("farol.attr.ig")
local MR = require("farol.attr.modified_relu")
local fail, show = A.fail, A.show

local L = {}

-- runs fn() with hook on layer; removes it on every path
local function with_hook(layer, hook, fn)
  local handle = layer:register_forward_hook(hook)
  local res = table.pack(pcall(fn))
  handle:remove()
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

-- the layer's output, or its (single) input with to_input, from a hook
local function layer_value(m, inputs, output, to_input)
  local v = output
  if to_input then
    if inputs.n ~= 1 then
      fail(m, "attribute_to_layer_input needs a layer called with one input, got %d", inputs.n)
    end
    v = inputs[1]
  end
  if not farol.is_tensor(v) then
    fail(m, "the layer's %s is a %s; layer methods need one tensor", to_input and "input" or "output", type(v))
  end
  return v
end

-- model and layer checked: layer must be a submodule of model
local function check_layer(m, model, layer)
  if not A.is_callable(model) then fail(m, "model must be a module or a callable, got %s", type(model)) end
  if not farol.nn.is_module(layer) then fail(m, "layer must be a farol.nn module, got %s", type(layer)) end
  if farol.nn.is_module(model) then
    for _, sub in ipairs(MR.modules(model)) do
      if sub == layer then return end
    end
    fail(m, "layer %s is not a submodule of the model", (tostring(layer):match("^[^\n(]*")))
  end
end

local function constructor(name, class, extra)
  farol[name] = function(model, layer, opts, ...)
    if select("#", ...) > 0 then fail(name, "takes model, layer and an optional options table") end
    check_layer(name, model, layer)
    local self = setmetatable({model = model, layer = layer, forward_func = model}, class)
    if extra then extra(self, opts) elseif opts ~= nil then fail(name, "takes no options table") end
    return self
  end
  class.__tostring = function(self) return "farol." .. name .. "(" .. tostring(self.layer) .. ")" end
  A[name] = class
end

-- ---------------------------------------------------------- LayerGradCam

-- Captum's compute_layer_gradients_and_eval + LayerGradCam's arithmetic
function L.gradcam(c, model, layer, to_input, relu, dim_sum)
  local m = c.method
  local act
  local forward = function(...)
    local args = table.pack(...)
    local captured
    local out = with_hook(layer, function(_, inputs, output)
      captured = layer_value(m, inputs, output, to_input)
    end, function() return model(table.unpack(args, 1, args.n)) end)
    act = captured
    return out, captured
  end
  local g = farol._attr_grad(m, forward, c.inputs, c.target, c.args, true)
  act = act:detach()
  local summed = g
  if g:dim() > 2 then
    local shape = {g:size(1), g:size(2)}
    for _ = 3, g:dim() do shape[#shape + 1] = 1 end
    summed = g:flatten(3):mean(3):reshape(shape)  -- flatten: no -1 to infer when a dim is 0
  end
  local scaled = summed * act
  if dim_sum then scaled = scaled:sum(2):unsqueeze(2) end
  if relu then scaled = scaled:relu() end
  return scaled
end

local LayerGradCam = A.define("LayerGradCam", {
  options = {
    {name = "relu_attributions", check = A.check.boolean, default = false},
    {name = "attribute_to_layer_input", check = A.check.boolean, default = false},
    {name = "attr_dim_summation", check = A.check.boolean, default = true},
  },
  any_dtype = true,
  layer_result = true,
  run = function(self, c)
    local o = c.opts
    return {L.gradcam(c, self.model, self.layer, o.attribute_to_layer_input, o.relu_attributions,
                      o.attr_dim_summation)}
  end,
})
constructor("LayerGradCam", LayerGradCam)

-- ----------------------------------------------------------- interpolate

local modes = {nearest = true, bilinear = true, linear = true, area = true}

-- LayerAttribution.interpolate(attr, size [, mode]): PyTorch's interpolate
-- (align_corners = false) of an (N, C, H, W) attribution to size {h, w}, or
-- of an (N, C, L) one to {l} (or l)
function L.interpolate(attr, size, mode, ...)
  local m = "LayerAttribution.interpolate"
  if select("#", ...) > 0 then fail(m, "takes attr, size and an optional mode") end
  if not farol.is_tensor(attr) then fail(m, "attr must be a tensor, got %s", type(attr)) end
  mode = mode == nil and "nearest" or mode
  if not modes[mode] then
    fail(m, "mode must be \"nearest\", \"bilinear\", \"linear\" or \"area\", got %s", show(mode))
  end
  if math.type(size) == "integer" then size = {size} end
  if type(size) ~= "table" then fail(m, "size must be an array of sizes, got %s", show(size)) end
  local nd = attr:dim() - 2
  if (nd ~= 1 and nd ~= 2) or #size ~= nd then
    fail(m, "attr of shape [%s] needs %s sizes; got %d", table.concat(attr:size(), ", "),
         nd == 1 and "1 (N, C, L)" or nd == 2 and "2 (N, C, H, W)" or "a 3-D or 4-D tensor and its",
         #size)
  end
  for i, s in ipairs(size) do
    if math.type(s) ~= "integer" or s < 1 then fail(m, "size[%d] must be an integer >= 1, got %s", i, show(s)) end
  end
  if mode == "bilinear" and nd ~= 2 then fail(m, "mode \"bilinear\" needs a 4-D attr; use \"linear\" for 3-D") end
  if mode == "linear" and nd ~= 1 then fail(m, "mode \"linear\" needs a 3-D attr; use \"bilinear\" for 4-D") end
  local oh, ow = nd == 2 and size[1] or 1, size[nd]
  return farol._interpolate(attr, oh, ow, mode == "linear" and "bilinear" or mode)
end

farol.LayerAttribution = {interpolate = L.interpolate}

-- --------------------------------------------------------- GuidedGradCam

local GuidedGradCam = A.define("GuidedGradCam", {
  options = {
    {name = "interpolate_mode", check = A.check.one_of("nearest", "bilinear", "linear", "area"),
     default = "nearest"},
    {name = "attribute_to_layer_input", check = A.check.boolean, default = false},
  },
  positional = {"additional_forward_args"},
  run = function(self, c)
    local o = c.opts
    local cam = L.gradcam(c, self.model, self.layer, o.attribute_to_layer_input, true, true)
    local guided = MR.gradients(c, self.model, false)
    local out = {}
    for i, x in ipairs(c.inputs) do
      local size = x:size()
      table.remove(size, 1)
      table.remove(size, 1)
      if #size ~= cam:dim() - 2 then
        fail(c.method, "input %d has shape [%s]: the Grad-CAM map of shape [%s] cannot be upsampled "
             .. "to it", i, table.concat(x:size(), ", "), table.concat(cam:size(), ", "))
      end
      out[i] = guided[i] * L.interpolate(cam, size, o.interpolate_mode)
    end
    return out
  end,
})
constructor("GuidedGradCam", GuidedGradCam)

-- ----------------------------------------------- LayerIntegratedGradients

-- the layer's value for the model run on inputs, without recording
local function layer_eval(c, model, layer, inputs)
  local captured
  farol.no_grad(function()
    with_hook(layer, function(_, ins, output) captured = layer_value(c.method, ins, output, false) end,
              function() return A.call_forward(c.method, model, inputs, c.args) end)
  end)
  if not captured then fail(c.method, "the layer did not run during the forward (is it a submodule the model calls?)") end
  if captured:dtype() == "int64" then fail(c.method, "the layer's output is int64; no gradient can be taken") end
  return captured
end

local LayerIntegratedGradients = A.define("LayerIntegratedGradients", {
  options = IG.options,
  any_dtype = true,
  layer_result = true,
  delta = "return_convergence_delta",
  run = function(self, c)
    local model, layer = self.model, self.layer
    local bases = IG.tensorize(c.inputs, IG.baselines(c.method, c.inputs, c.opts.baselines, c.k))
    local at_inputs = layer_eval(c, model, layer, c.inputs)
    local at_bases = layer_eval(c, model, layer, bases)
    -- IG on the layer's value: the model runs on its own inputs (passed
    -- after the layer value, expanded per step as Captum does) and the hook
    -- puts the scaled layer value in place of the layer's output
    local forward = function(scaled, ...)
      local args = table.pack(...)
      return with_hook(layer, function() return scaled end,
                       function() return model(table.unpack(args, 1, args.n)) end)
    end
    local all = {n = #c.inputs + c.args.n}
    for i, x in ipairs(c.inputs) do all[i] = x end
    for i = 1, c.args.n do all[#c.inputs + i] = c.args[i] end
    local lc = {method = c.method, opts = c.opts, inputs = {at_inputs}, n = c.n, target = c.target,
                args = all, k = c.k}
    local attrs = IG.integrate(lc, forward, {at_bases}, self.multiply_by_inputs)
    local delta
    if c.opts.return_convergence_delta then delta = IG.delta(c, model, attrs, bases, c.inputs) end
    return attrs, delta
  end,
})
constructor("LayerIntegratedGradients", LayerIntegratedGradients, function(self, opts)
  self.multiply_by_inputs = IG.read_ctor("LayerIntegratedGradients", opts)
end)

return L
