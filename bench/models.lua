-- The four benchmark models (float32, inference mode), as farol users would
-- write them.  Each entry returns model, input, target, extra forward args.
local farol = require("farol")
local nn = farol.nn

local M = {}

-- forward GFLOP of each model (multiply-adds x 2), as the PyTorch runner uses
M.forward_gflop = {mlp = 0.47658, cnn = 3.26769, resnet18 = 29.02517, transformer = 6.97934}

function M.mlp()
  local model = nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(),
                              nn.Linear(1024, 10))
  local target = {}
  for i = 1, 128 do target[i] = (i - 1) % 10 + 1 end
  return model, farol.randn(128, 784), target, nil
end

function M.cnn()
  local model = nn.Sequential(
    nn.Conv2d(3, 32, 3, {padding = 1}), nn.ReLU(), nn.Conv2d(32, 32, 3, {padding = 1}), nn.ReLU(),
    nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, {padding = 1}), nn.ReLU(),
    nn.Conv2d(64, 64, 3, {padding = 1}), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
    nn.Linear(4096, 256), nn.ReLU(), nn.Linear(256, 10), nn.Softmax(2))
  return model, farol.randn(64, 3, 32, 32), 4, nil
end

function M.resnet18()
  local model = require("farol.models.resnet18")(1000)
  local target = {}
  for i = 1, 8 do target[i] = (i - 1) * 7 % 1000 + 1 end
  return model, farol.randn(8, 3, 224, 224), target, nil
end

function M.transformer()
  local model = nn.Module{
    layer1 = nn.TransformerEncoderLayer(256, 8, {dim_feedforward = 1024, dropout = 0, batch_first = true}),
    layer2 = nn.TransformerEncoderLayer(256, 8, {dim_feedforward = 1024, dropout = 0, batch_first = true}),
    head = nn.Linear(256, 2),
    forward = function(self, x, mask)
      local padding = mask:eq(0)
      local h = self.layer2(self.layer1(x, {src_key_padding_mask = padding}), {src_key_padding_mask = padding})
      local m = mask:unsqueeze(-1)
      return self.head((h * m):sum(2) / m:sum(2))
    end,
  }
  local mask = farol.ones(16, 128)
  for n = 2, 16, 2 do mask[n]:narrow(1, 113, 16):fill_(0) end  -- last 16 tokens of even examples
  return model, farol.randn(16, 128, 256), 2, mask
end

-- median wall time in ms of `repeats` calls of fn, after `warmups` untimed calls
function M.median_ms(fn, repeats, warmups)
  for _ = 1, warmups do fn() end
  local times = {}
  for k = 1, repeats do
    local t0 = farol.clock()
    fn()
    times[k] = (farol.clock() - t0) * 1e3
  end
  table.sort(times)
  local n = #times
  return n % 2 == 1 and times[(n + 1) // 2] or (times[n // 2] + times[n // 2 + 1]) / 2
end

return M
