-- IntegratedGradients with Captum's semantics: the path integral of the
-- gradient from the baselines to the inputs, by Gauss-Legendre (Captum's
-- default) or a Riemann sum, chunked by internal_batch_size as Captum's
-- _batch_attribution does, with the convergence delta on request.
-- Captum's numbers are reproduced to the bit where it rounds: its step
-- sizes pass through float32 (torch.tensor(...).float()), its Riemann
-- alphas come from a float32 torch.linspace.  LayerIntegratedGradients
-- (layer.lua) runs the same integral on a layer's output.
local farol = require("farol")
local A = require("farol.attr")
local fail, show = A.fail, A.show

local IG = {}

local function f32(v) return (string.unpack("f", string.pack("f", v))) end

-- torch.linspace(a, b, n) in float32 on CPU, element for element: the first
-- half counts up from a, the second down from b; in blocks of 16 (two AVX2
-- vectors of 8) each vector is its first element plus k * step
local function linspace_f32(a, b, n)
  local start, stop = f32(a), f32(b)
  local step = f32(f32(stop - start) / (n - 1))
  local half = n // 2
  local function at(i)
    if i < half then return f32(start + step * i) end
    return f32(stop - step * (n - i - 1))
  end
  local out, i = {}, 0
  while i + 16 <= n do
    for v = 0, 1 do
      local base = at(i + 8 * v)
      for k = 0, 7 do out[i + 8 * v + k + 1] = f32(base + f32(k * step)) end
    end
    i = i + 16
  end
  for j = i, n - 1 do out[j + 1] = at(j) end
  return out
end

-- Gauss-Legendre nodes and weights on [-1, 1], ascending, symmetrised and
-- normalised as numpy's leggauss
local function leggauss(n)
  local x, w = {}, {}
  for i = 1, n do
    local z = math.cos(math.pi * (i - 0.25) / (n + 0.5))
    local dp
    for _ = 1, 100 do
      local p0, p1 = 1.0, z
      for k = 2, n do p0, p1 = p1, ((2 * k - 1) * z * p1 - (k - 1) * p0) / k end
      dp = n * (z * p1 - p0) / (z * z - 1)
      local dz = p1 / dp
      z = z - dz
      if math.abs(dz) < 1e-16 then break end
    end
    local p0, p1 = 1.0, z
    for k = 2, n do p0, p1 = p1, ((2 * k - 1) * z * p1 - (k - 1) * p0) / k end
    dp = n * (z * p1 - p0) / (z * z - 1)
    x[n + 1 - i] = z
    w[n + 1 - i] = 2 / ((1 - z * z) * dp * dp)
  end
  local sx, sw, total = {}, {}, 0
  for i = 1, n do
    sx[i] = (x[i] - x[n + 1 - i]) / 2
    sw[i] = (w[i] + w[n + 1 - i]) / 2
    total = total + sw[i]
  end
  for i = 1, n do sw[i] = sw[i] * (2 / total) end
  return sx, sw
end

-- step sizes (float32-rounded, as Captum's .float()) and alphas
function IG.quadrature(m, method, n)
  local steps, alphas = {}, {}
  if method == "gausslegendre" then
    local x, w = leggauss(n)
    for i = 1, n do
      steps[i] = f32(0.5 * w[i])
      alphas[i] = 0.5 * (1 + x[i])
    end
    return steps, alphas
  end
  if n < 2 then fail(m, "n_steps must be at least 2 for %s, got %d", method, n) end
  for i = 1, n do steps[i] = 1 / n end
  if method == "riemann_trapezoid" then
    steps[1], steps[n] = steps[1] / 2, steps[n] / 2
    alphas = linspace_f32(0, 1, n)
  elseif method == "riemann_left" then
    alphas = linspace_f32(0, 1 - 1 / n, n)
  elseif method == "riemann_middle" then
    alphas = linspace_f32(1 / (2 * n), 1 - 1 / (2 * n), n)
  else
    alphas = linspace_f32(1 / n, 1, n)
  end
  for i = 1, n do steps[i] = f32(steps[i]) end
  return steps, alphas
end

-- Baselines, one per input: a number, or a tensor shaped like the input or
-- with a batch of 1 (converted to the input's dtype).  nil means 0 for
-- floating inputs; int64 inputs (layer methods' token ids) need one.
-- k > 1: the inputs are k blocks of the user's batch (targets = {...}), and
-- a baseline with the user's batch is expanded the same way.
function IG.baselines(m, xs, given, k)
  local list
  if given == nil or type(given) == "number" or farol.is_tensor(given) then
    list = {}
    for i = 1, #xs do list[i] = given end
  elseif type(given) == "table" and getmetatable(given) == nil then
    list = {}
    for i = 1, math.max(#xs, rawlen(given)) do list[i] = rawget(given, i) end
    if #list ~= #xs then
      fail(m, "baselines has %d entries but there are %d inputs (give one per input)", #list, #xs)
    end
  else
    fail(m, "baselines must be nil, a number, a tensor or an array of them (one per input), got %s",
         show(given))
  end
  for i, x in ipairs(xs) do
    local b, int = list[i], x:dtype() == "int64"
    if b == nil then
      if int then fail(m, "input %d is int64 (token ids): give its baselines", i) end
      list[i] = 0.0
    elseif type(b) == "number" then
      if int and math.type(b) ~= "integer" then
        fail(m, "baseline %d must be an integer for the int64 input, got %s", i, show(b))
      end
    elseif farol.is_tensor(b) then
      if k and k > 1 and b:dim() > 0 and b:size(1) > 1 and b:size(1) * k == x:size(1) then
        b = A.expand_rows(b, k, false)
        list[i] = b
      end
      local xs_, bs = x:size(), b:size()
      local ok = #bs == #xs_ and (bs[1] == xs_[1] or bs[1] == 1)
      for d = 2, #xs_ do ok = ok and bs[d] == xs_[d] end
      if not ok then
        fail(m, "baseline %d has shape [%s] but input %d has shape [%s]; a baseline must match "
             .. "the input or have a batch of 1", i, table.concat(bs, ", "), i, table.concat(xs_, ", "))
      end
      if (b:dtype() == "int64") ~= int then
        fail(m, "baseline %d is %s but input %d is %s", i, b:dtype(), i, x:dtype())
      end
      if b:dtype() ~= x:dtype() then list[i] = b:to(x:dtype()) end
    else
      fail(m, "baseline %d must be a number or a tensor, got %s", i, show(b))
    end
  end
  return list
end

-- Captum's _tensorize_baseline: each baseline as a full batch of n examples
function IG.tensorize(xs, bases)
  local out = {}
  for i, x in ipairs(xs) do
    local b = bases[i]
    if type(b) == "number" then
      out[i] = farol.full(x:size(), b, x:dtype())
    elseif b:size(1) == 1 and x:size(1) > 1 then
      out[i] = A.expand_rows(b, x:size(1), false)
    else
      out[i] = b
    end
  end
  return out
end

-- One of Captum's _attribute calls: steps s..e in one forward, the
-- scaled inputs stacked step-major (n rows per step).
local function chunk(c, forward, xs, bases, steps, alphas, s, e, multiply)
  local n, S = c.n, e - s + 1
  local scaled = {}
  for i, x in ipairs(xs) do
    local b = bases[i]
    local diff = x - b
    local parts = {}
    for j = s, e do parts[#parts + 1] = diff * alphas[j] + b end
    scaled[i] = #parts == 1 and parts[1] or farol.cat(parts, 1)
  end
  local target = farol._attr_target_expand(c.target, S, false)
  local grads = A.gradients(c, forward, scaled, target, A.expand_args(c.args, S, false))
  local out = {}
  for i, g in ipairs(grads) do
    local w = {}
    for j = s, e do w[#w + 1] = {steps[j]} end
    local shape = {S, n}
    for d = 2, xs[i]:dim() do shape[#shape + 1] = xs[i]:size(d) end
    local total = (g:reshape(S, -1) * farol.tensor(w, g:dtype())):reshape(shape):sum(1)
    out[i] = multiply and total * (xs[i] - bases[i]) or total
  end
  return out
end

-- The integral for the call record c, with forward as the function of the
-- inputs c.inputs.  Returns the attributions and, when asked, the delta
-- computed by delta_forward on delta_inputs (the model and its inputs for
-- the layer method).
function IG.integrate(c, forward, bases, multiply)
  local o = c.opts
  local steps, alphas = IG.quadrature(c.method, o.method, o.n_steps)
  -- Captum: at least one step per chunk, however small internal_batch_size
  local per = o.n_steps
  if o.internal_batch_size then per = math.max(1, o.internal_batch_size // c.n) end
  local total
  local s = 1
  while s <= o.n_steps do
    local e = math.min(s + per - 1, o.n_steps)
    local part = chunk(c, forward, c.inputs, bases, steps, alphas, s, e, multiply)
    if total then
      for i = 1, #total do total[i] = total[i] + part[i] end
    else
      total = part
    end
    s = e + 1
  end
  return total
end

-- Captum's compute_convergence_delta: sum of attributions minus
-- (f(end) - f(start)) on the selected outputs, per example
function IG.delta(c, forward, attrs, start, stop)
  local f_start = A.selected_outputs(c, forward, start, c.args)
  local f_end = A.selected_outputs(c, forward, stop, c.args)
  return A.row_sums(attrs) - (f_end - f_start)
end

IG.options = {
  {name = "baselines", check = A.check.any},
  {name = "n_steps", check = A.check.integer(1), default = 50},
  {name = "method", check = A.check.one_of("gausslegendre", "riemann_right", "riemann_left",
                                            "riemann_middle", "riemann_trapezoid"),
   default = "gausslegendre"},
  {name = "internal_batch_size", check = A.check.integer(1)},
  {name = "return_convergence_delta", check = A.check.boolean, default = false},
}

local IntegratedGradients = A.define("IntegratedGradients", {
  options = IG.options,
  delta = "return_convergence_delta",
  run = function(self, c)
    local bases = IG.baselines(c.method, c.inputs, c.opts.baselines, c.k)
    local attrs = IG.integrate(c, self.forward_func, bases, self.multiply_by_inputs)
    local delta
    if c.opts.return_convergence_delta then
      delta = IG.delta(c, self.forward_func, attrs, IG.tensorize(c.inputs, bases), c.inputs)
    end
    return attrs, delta
  end,
})
A.IntegratedGradients = IntegratedGradients

-- constructor options: {multiply_by_inputs = true}
function IG.read_ctor(m, opts)
  opts = farol.check_options(opts, m, {"multiply_by_inputs"})
  if opts.multiply_by_inputs == nil then return true end
  return A.check.boolean(m, "multiply_by_inputs", opts.multiply_by_inputs)
end

function farol.IntegratedGradients(forward_func, opts, ...)
  local m = "IntegratedGradients"
  if select("#", ...) > 0 then fail(m, "takes forward_func and an optional options table") end
  local self = A.new(IntegratedGradients, forward_func)
  self.multiply_by_inputs = IG.read_ctor(m, opts)
  return self
end

A.IG = IG
return IG
