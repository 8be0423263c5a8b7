-- help(x): the text comes from docs/API.md (compiled in), found for
-- functions, methods, classes, instances and names; every public function,
-- module class and tensor method has some.
local farol = require("farol")
local H = require("helpers")
local help = require("farol.help")

-- the text of help(...) on one line: wrapping does not matter
local function text(...) return (help.text(...):gsub("%s+", " ")) end

local function undocumented(t)
  return t:find("says nothing", 1, true) or t:find("no documentation", 1, true)
end

describe("help", function()
  it("finds a function, a tensor method, a class, an instance and a name", function()
    assert.truthy(text(farol.zeros):find("sizes as varargs or one array", 1, true))
    assert.truthy(text(farol.ones(2).view):find("view shares storage", 1, true))
    assert.truthy(text(farol.nn.Linear):find("Linear(in, out [, {bias = true}])", 1, true))
    assert.truthy(text(farol.nn.Linear(2, 3)):find("Linear(in, out", 1, true))
    assert.truthy(text("farol.save"):find("chooses the format by the extension", 1, true))
    assert.truthy(text(farol.grad):find("like torch.autograd.grad", 1, true))
    assert.truthy(text():find("help(x) shows what docs/API.md says", 1, true))
  end)

  it("says so for what is not farol's, and checks its arguments", function()
    assert.truthy(text(print):find("no documentation for this function", 1, true))
    assert.truthy(text("no_such_name"):find("docs/API.md says nothing about no_such_name", 1, true))
    H.fails(function() help.text(1, 2) end, "farol: help: takes one argument, got 2")()
  end)

  it("has text for every public function, nn class and tensor method", function()
    local missing = {}
    local function check(label, v)
      if undocumented(help.text(v)) then missing[#missing + 1] = label end
    end
    for k, v in pairs(farol) do
      if type(v) == "function" and not k:match("^_") then check("farol." .. k, v) end
    end
    for k, v in pairs(farol.nn) do
      if (type(v) == "table" or type(v) == "function") and not k:match("^_") then check("farol.nn." .. k, v) end
    end
    for k, v in pairs(help.tensor_methods()) do check("x:" .. k, v) end
    table.sort(missing)
    assert(#missing == 0, "not in docs/API.md (document them there): " .. table.concat(missing, ", "))
  end)
end)
