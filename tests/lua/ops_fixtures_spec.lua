-- Every variant of every tests/fixtures/ops file, through the Lua API:
-- evaluate the variant's call, compare the result (and indices), then
-- backpropagate grad_out with farol.grad and compare each gradient.
local farol = require("farol")
local H = require("helpers")

local split = H.split


local RTOL, ATOL = 1e-10, 1e-10

describe("ops fixtures", function()
  for _, op in ipairs(H.fixture_files("ops")) do
    local t, md = H.load("ops/" .. op .. ".safetensors")
    for _, v in ipairs(split(md.variants)) do
      local call = md[v .. ".call"]
      it(op .. " " .. v .. ": " .. call, function()
        local env = {farol = farol, math = math}
        local inputs = {}
        for _, name in ipairs(split(md[v .. ".inputs"])) do
          local x = t[v .. "." .. name]:clone()
          if x:dtype() ~= "int64" then x:requires_grad(true) end
          env[name] = x
          inputs[name] = x
        end
        local f = assert(load("return " .. call, "=" .. op, "t", env))
        local out, indices = f()
        H.close(out, t[v .. ".out"], RTOL, ATOL, v .. " out")
        if t[v .. ".indices"] then
          assert.equals("int64", indices:dtype())
          H.close(indices, t[v .. ".indices"], 0, 0, v .. " indices")
        end
        local names = split(md[v .. ".grads"])
        if #names > 0 then
          local wrt = {}
          for i, name in ipairs(names) do wrt[i] = inputs[name] end
          local grads = farol.grad({out}, wrt, {t[v .. ".grad_out"]})
          for i, name in ipairs(names) do
            H.close(grads[i], t[v .. ".grad_" .. name], RTOL, ATOL, v .. " grad_" .. name)
          end
        end
      end)
    end
  end
end)
