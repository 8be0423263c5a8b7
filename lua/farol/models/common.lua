-- Shared by the model constructors: torchvision's keyword arguments as a Lua
-- options table (or a number for num_classes), and torchvision's weight
-- initialisations.
local farol = require("farol")
local nn = farol.nn

local M = {}

-- arg: nil, a number (num_classes) or an options table with keys in valid;
-- returns a table of every option with defaults filled in
function M.options(fn, arg, valid, defaults)
  local opts = {}
  if type(arg) == "number" then
    opts.num_classes = arg
  elseif arg ~= nil then
    for k, v in pairs(farol.check_options(arg, fn, valid)) do opts[k] = v end
  end
  for k, v in pairs(defaults) do
    if opts[k] == nil then opts[k] = v end
  end
  nn._check_int(fn, "num_classes", opts.num_classes)
  if opts.dropout ~= nil and (type(opts.dropout) ~= "number" or opts.dropout < 0 or opts.dropout > 1) then
    nn._fail("%s: dropout must be a number in [0, 1], got %s", fn, tostring(opts.dropout))
  end
  return opts
end

-- a constructor's stray arguments are an error: n is select("#", ...)
-- after the one argument it takes
function M.no_extra(fn, n)
  if n > 0 then
    nn._fail("%s: takes one argument (num_classes or an options table), got %d more", fn, n)
  end
end

-- torch.nn.init on a parameter, in place (no gradient recorded)
local function set(t, value)
  farol.no_grad(function() t:copy_(value) end)
end

-- kaiming_normal_ with gain sqrt(2): std = sqrt(2 / fan), fan = fan_in
-- (size(2) * kernel) or fan_out (size(1) * kernel)
function M.kaiming_normal(w, mode)
  local s = w:size()
  local fan = w:numel() // (mode == "fan_out" and s[2] or s[1])
  set(w, farol.randn(s) * math.sqrt(2 / fan))
end

-- kaiming_uniform_ with gain sqrt(2): U(-sqrt(6 / fan_in), sqrt(6 / fan_in))
function M.kaiming_uniform(w)
  local fan = w:numel() // w:size(1)
  set(w, nn._uniform(math.sqrt(6 / fan), w:size()))
end

function M.normal(w, std) set(w, farol.randn(w:size()) * std) end
function M.constant(t, v) if t then farol.no_grad(function() t:fill_(v) end) end end

return M
