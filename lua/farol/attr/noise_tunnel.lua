-- NoiseTunnel with Captum's semantics: the wrapped method run on
-- nt_samples noisy copies of each example (Gaussian noise of stdevs, from
-- farol's seeded generator), combined as smoothgrad (mean), smoothgrad_sq
-- (mean of squares) or vargrad (their variance).  The samples are drawn in
-- chunks of nt_samples_batch_size exactly as Captum splits them (20 samples
-- in chunks of 7 on 3 examples: forwards on 21, 21 and 18 rows), each
-- example's samples side by side (Captum's repeat_interleave).
local farol = require("farol")
local A = require("farol.attr")
local IG = require("farol.attr.ig")
local fail, show = A.fail, A.show

local own = {
  {name = "nt_type", check = A.check.one_of("smoothgrad", "smoothgrad_sq", "vargrad"),
   default = "smoothgrad"},
  {name = "nt_samples", check = A.check.integer(1), default = 5},
  {name = "nt_samples_batch_size", check = A.check.integer(1)},
  {name = "stdevs", check = A.check.any, default = 1.0},
  {name = "draw_baseline_from_distrib", check = A.check.boolean, default = false},
}

-- one stdev per input
local function read_stdevs(m, v, n_in)
  local list = {}
  if type(v) == "number" then
    for i = 1, n_in do list[i] = v end
  elseif type(v) == "table" and getmetatable(v) == nil then
    if rawlen(v) ~= n_in then
      fail(m, "stdevs has %d values but there are %d inputs (give one number, or one per input)",
           rawlen(v), n_in)
    end
    for i = 1, n_in do list[i] = rawget(v, i) end
  else
    fail(m, "stdevs must be a number or an array of numbers (one per input), got %s", show(v))
  end
  for i, s in ipairs(list) do
    if type(s) ~= "number" or not (s >= 0) or s == math.huge then
      fail(m, "stdevs[%d] must be a finite number >= 0, got %s", i, show(s))
    end
  end
  return list
end

-- the baselines of one chunk of S samples per example, expanded like the
-- inputs (a baseline per example is repeated S times in a row)
local function chunk_baselines(bases, n, S)
  local out = {}
  for i, b in ipairs(bases) do
    if farol.is_tensor(b) and b:size(1) == n and n > 1 then out[i] = A.expand_rows(b, S, true)
    else out[i] = b end
  end
  return out
end

-- random row indices (1-based) in 1..rows, n * S of them, from farol's generator
local function random_rows(count, rows)
  local u = farol.rand(count, "float64"):totable()
  local idx = {}
  for j, v in ipairs(u) do idx[j] = math.min(rows, math.floor(v * rows) + 1) end
  return farol.tensor(idx, "int64")
end

local function define_for(inner_spec)
  local options = {}
  for _, o in ipairs(own) do options[#options + 1] = o end
  for _, o in ipairs(inner_spec.options) do options[#options + 1] = o end
  return {
    options = options,
    layer_result = inner_spec.layer_result,
    delta = inner_spec.delta,
    run = function(self, c)
      local m, o, inner = c.method, c.opts, self.method
      local xs, n = c.inputs, c.n
      local stdevs = read_stdevs(m, o.stdevs, #xs)
      local takes_baselines = false
      for _, def in ipairs(inner_spec.options) do
        if def.name == "baselines" then takes_baselines = true end
      end
      local bases
      if o.draw_baseline_from_distrib then
        if not takes_baselines then
          fail(m, "draw_baseline_from_distrib needs a method that takes baselines (%s does not)",
               inner._method)
        end
        if o.baselines == nil then fail(m, "draw_baseline_from_distrib needs baselines to draw from") end
      end
      if takes_baselines and o.baselines ~= nil then
        if o.draw_baseline_from_distrib then
          -- any number of rows to draw from; each must match the input's shape
          bases = {}
          local given = o.baselines
          if type(given) ~= "table" or getmetatable(given) ~= nil then
            given = {}
            for i = 1, #xs do given[i] = o.baselines end
          elseif rawlen(given) ~= #xs then
            fail(m, "baselines has %d entries but there are %d inputs (give one per input)", rawlen(given), #xs)
          end
          for i, x in ipairs(xs) do
            local b = rawget(given, i)
            if b == nil then
              b = 0.0
            elseif type(b) == "number" then
              b = b + 0.0
            elseif not farol.is_tensor(b) then
              fail(m, "baseline %d must be a number or a tensor, got %s", i, show(b))
            else
              local ok = b:dim() == x:dim()
              for d = 2, x:dim() do ok = ok and b:size(d) == x:size(d) end
              if not ok then
                fail(m, "baseline %d has shape [%s]: its rows must be shaped like input %d's [%s]",
                     i, table.concat(b:size(), ", "), i, table.concat(x:size(), ", "))
              end
              if b:dtype() ~= x:dtype() then b = b:to(x:dtype()) end
            end
            bases[i] = b
          end
        else
          bases = IG.baselines(m, xs, o.baselines, c.k)
        end
      end
      local total = o.nt_samples
      local per = o.nt_samples_batch_size and math.min(total, o.nt_samples_batch_size) or total
      local sum, sumsq, deltas = {}, {}, {}
      local function part(S)
        local noisy = {}
        for i, x in ipairs(xs) do
          local xe = A.expand_rows(x, S, true)
          noisy[i] = xe + farol.randn(xe:size(), x:dtype()) * stdevs[i]
        end
        local io = setmetatable({}, {__index = o})
        if bases then
          if o.draw_baseline_from_distrib then
            local drawn = {}
            for i, b in ipairs(bases) do
              drawn[i] = farol.is_tensor(b) and b:index_select(1, random_rows(n * S, b:size(1))) or b
            end
            io.baselines = drawn
          else
            io.baselines = chunk_baselines(bases, n, S)
          end
        end
        local ic = {method = m, opts = io, inputs = noisy, n = n * S, k = 1,
                    target = farol._attr_target_expand(c.target, S, true),
                    args = A.expand_args(c.args, S, true)}
        local attrs, delta = inner_spec.run(inner, ic)
        for i, a in ipairs(attrs) do
          local shape = {n, S}
          for d = 2, a:dim() do shape[#shape + 1] = a:size(d) end
          local v = a:reshape(shape)
          local s1, s2 = v:sum(2), (v * v):sum(2)
          if sum[i] then
            sum[i], sumsq[i] = sum[i] + s1, sumsq[i] + s2
          else
            sum[i], sumsq[i] = s1, s2
          end
        end
        if delta then deltas[#deltas + 1] = delta end
      end
      for _ = 1, total // per do part(per) end
      if total % per > 0 then part(total % per) end
      local out = {}
      for i = 1, #sum do
        local mean, mean_sq = sum[i] / total, sumsq[i] / total
        if o.nt_type == "smoothgrad" then out[i] = mean
        elseif o.nt_type == "smoothgrad_sq" then out[i] = mean_sq
        else out[i] = mean_sq - mean * mean end
      end
      local delta
      if #deltas > 0 then
        if c.k > 1 then
          -- many targets: example-major (K N x nt_samples), so the K blocks split off
          for j, d in ipairs(deltas) do deltas[j] = d:reshape(n, -1) end
          delta = #deltas == 1 and deltas[1] or farol.cat(deltas, 2)
        else
          -- Captum's order: chunk by chunk, each example's samples in a row
          delta = #deltas == 1 and deltas[1] or farol.cat(deltas, 1)
        end
      end
      return out, delta
    end,
  }
end

function farol.NoiseTunnel(method, ...)
  local m = "NoiseTunnel"
  if select("#", ...) > 0 then fail(m, "takes one argument (an attribution method)") end
  local mt = getmetatable(method)
  if type(method) ~= "table" or type(mt) ~= "table" or type(rawget(mt, "_spec")) ~= "table" then
    fail(m, "method must be a farol attribution method (farol.Saliency(f), farol.IntegratedGradients(f), ...), got %s",
         show(method))
  end
  local inner_spec = rawget(mt, "_spec")
  local class = A.define(m, define_for(inner_spec))
  class.__tostring = function(self) return "farol.NoiseTunnel(" .. tostring(self.method) .. ")" end
  return setmetatable({method = method, forward_func = method.forward_func}, class)
end

return {}
