-- The dataset driver's command line (scripts/attribute runs it):
--
--   build/farol examples/attribute_dataset.lua --model MODEL.lua --data PATH --out DIR [options]
--   build/farol examples/attribute_dataset.lua --merge DIR
--
-- MODEL.lua returns a model, or a table {model = ..., transform = function(image, name) ... end}
-- (examples/models/digits.lua is one).  PATH is a folder of PNG/JPEG images or
-- a .safetensors / .npy file of examples.  Options:
--   --method NAME        a farol attribution class (default Saliency)
--   --target T           predicted (default) | labels | a 1-based class
--   --batch N            examples per forward/backward (default 32)
--   --shard-size N       examples per output file (default 256)
--   --shard K/N          process slice K of N (K from 1; a job array's 0-based index i is K = i + 1)
--   --on-error skip|fail what to do with a file that is not a readable image (default skip)
--   --progress auto|on|off  progress bar on stderr (auto: when stderr is a terminal)
--   --threads N          farol.set_num_threads(N)
--   --key NAME           the tensor of a safetensors file holding the examples (default images)
--   --seed N             base seed for noisy methods (default 0)
local farol = require("farol")

local function usage(msg)
  io.stderr:write("attribute: ", msg, "\n(see the header of examples/attribute_dataset.lua)\n")
  os.exit(2)
end

local flags = {["--model"] = "model", ["--data"] = "data", ["--out"] = "out", ["--method"] = "method",
               ["--target"] = "target", ["--batch"] = "batch", ["--shard-size"] = "shard_size",
               ["--shard"] = "shard", ["--on-error"] = "on_error", ["--progress"] = "progress",
               ["--threads"] = "threads", ["--key"] = "key", ["--seed"] = "seed", ["--merge"] = "merge"}
local a, i = {}, 1
while arg[i] do
  local name = flags[arg[i]]
  if not name then usage("unknown argument " .. arg[i]) end
  if arg[i + 1] == nil then usage(arg[i] .. " needs a value") end
  a[name] = arg[i + 1]
  i = i + 2
end

local function int(name)
  if a[name] == nil then return nil end
  local v = math.tointeger(tonumber(a[name]))
  if not v then usage("--" .. name:gsub("_", "-") .. " must be an integer, got " .. a[name]) end
  return v
end

if a.merge then
  for k in pairs(a) do if k ~= "merge" then usage("--merge takes no other option") end end
  local ok, path = pcall(farol.dataset.merge, a.merge)
  if not ok then
    io.stderr:write(tostring(path), "\n")
    os.exit(1)
  end
  print("index written to " .. path)
  return
end
if not a.model or not a.data or not a.out then usage("--model, --data and --out are required") end
if a.threads then farol.set_num_threads(int("threads")) end

local spec = dofile(a.model)
local model, transform = spec, nil
if type(spec) == "table" and getmetatable(spec) == nil then model, transform = spec.model, spec.transform end
local target = a.target
if target and target ~= "predicted" and target ~= "labels" then target = int("target") end
local progress = ({auto = "auto", on = true, off = false})[a.progress or "auto"]
if progress == nil then usage("--progress must be auto, on or off") end

local ok, s = pcall(farol.dataset.run, {
  source = a.data, model = model, transform = transform, out = a.out, method = a.method, target = target,
  batch_size = int("batch"), shard_size = int("shard_size"), shard = a.shard, on_error = a.on_error,
  progress = progress, key = a.key, seed = int("seed"),
})
if not ok then
  io.stderr:write(tostring(s), "\n")
  os.exit(1)
end
print(string.format("attributed %d of %d examples (%d skipped) into %d files (%d already done) in %.2f s, "
                    .. "%.1f examples/s; index: %s", s.attributed, s.examples, s.skipped, s.chunks,
                    s.chunks_resumed, s.seconds, s.rate, s.index))
