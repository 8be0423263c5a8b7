-- farol.dataset and its command line (examples/attribute_dataset.lua): the
-- progress bar only on a terminal, resume without redoing finished chunks,
-- three slices run as three processes equal one run, and corrupt images
-- reported and skipped (or failing the run), never dropped silently.
-- The model is the shipped digit classifier; the data its held-out digits.
local farol = require("farol")
local H = require("helpers")

local root = H.fixtures .. "/../.."
local runner = os.getenv("FAROL_RUNNER") or "build/farol"
local cli = runner .. " " .. root .. "/examples/attribute_dataset.lua --model " .. root .. "/examples/models/digits.lua"
local digits_file = root .. "/examples/data/digits_test.safetensors"
local digits = dofile(root .. "/examples/models/digits.lua")

local function tmpdir()
  local p = os.tmpname()
  os.remove(p)
  assert(os.execute("mkdir -p " .. p))
  return p
end

-- runs a shell command; returns its exit status, stdout and stderr
local function sh(cmd)
  local errf = os.tmpname()
  local p = io.popen(cmd .. " 2>" .. errf)
  local out = p:read("a")
  local ok, _, code = p:close()
  local f = io.open(errf, "rb")
  local err = f:read("a")
  f:close()
  os.remove(errf)
  return ok and 0 or code, out, err
end

local read = H.read_file

-- a folder of digit PNGs (1-based numbers of the held-out set) plus extra files
local function digit_folder(n, extra)
  local dir = tmpdir()
  local d = farol.load(digits_file)
  for i = 1, n do farol.image.save(string.format("%s/d%02d.png", dir, i), d.images[i]) end
  for name, bytes in pairs(extra or {}) do
    local f = assert(io.open(dir .. "/" .. name, "wb"))
    f:write(bytes)
    f:close()
  end
  return dir
end

describe("dataset driver", function()
  it("attributes every example as Saliency does, one chunk file per shard_size examples", function()
    local out = tmpdir()
    local s = farol.dataset.run{source = digits_file, model = digits.model, out = out, shard_size = 100,
                                batch_size = 7, target = "labels"}
    assert.are.equal(360, s.attributed)
    assert.are.equal(4, s.chunks)
    local attr, index, target, skipped = farol.dataset.load(out)
    assert.are.same({360, 1, 8, 8}, attr:size())
    assert.are.same(#skipped, 0)
    local d = farol.load(digits_file)
    H.close(index, farol.arange(1, 361):to("int64"), 0, 0, "index")
    H.close(target, d.labels + 1, 0, 0, "targets are the labels, 1-based")
    local direct = farol.Saliency(digits.model):attribute(d.images:narrow(1, 101, 20),
                                                           (d.labels:narrow(1, 101, 20) + 1))
    -- (float32 sums in other batch sizes: agreement to rounding)
    H.close(attr:narrow(1, 101, 20), direct, 1e-4, 1e-6, "as Saliency")
    assert.is_truthy(read(out .. "/index.json"):find('"file": "attr-00004.safetensors"', 1, true))
  end)

  it("reads a .npy file of examples, with a fixed target", function()
    local dir = tmpdir()
    local d = farol.load(digits_file)
    farol.save(dir .. "/x.npy", d.images:narrow(1, 1, 10))
    local s = farol.dataset.run{source = dir .. "/x.npy", model = digits.model, out = dir .. "/out", target = 4,
                                shard_size = 4}
    assert.are.equal(3, s.chunks)
    local attr, _, target = farol.dataset.load(dir .. "/out")
    H.close(target, farol.full({10}, 4, "int64"), 0, 0, "target")
    H.close(attr, farol.Saliency(digits.model):attribute(d.images:narrow(1, 1, 10), 4), 1e-4, 1e-6, "as Saliency")
  end)

  it("shows progress on stderr only when it is a terminal", function()
    local out = tmpdir()
    local code, stdout, err = sh(cli .. " --data " .. digits_file .. " --out " .. out .. " --shard-size 90")
    assert.are.equal(0, code)
    assert.are.equal("", err)                     -- stderr a file: quiet
    assert.is_truthy(stdout:find("attributed 360 of 360 examples (0 skipped) into 4 files", 1, true))
    -- forced on, it draws the bar with rate and ETA even into a file
    code, _, err = sh(cli .. " --data " .. digits_file .. " --out " .. tmpdir() .. " --progress on")
    assert.are.equal(0, code)
    assert.is_truthy(err:find("\r[##############################] 360/360", 1, true))
    assert.is_truthy(err:find("ex/s  ETA 0:00", 1, true))
    -- on a terminal (util-linux's script gives one), auto draws it
    local log = os.tmpname()
    code = sh("script -qec '" .. cli .. " --data " .. digits_file .. " --out " .. tmpdir() .. "' " .. log)
    assert.are.equal(0, code)
    assert.is_truthy(read(log):find("360/360", 1, true))
    os.remove(log)
  end)

  it("resumes without redoing finished chunks", function()
    local out = tmpdir()
    farol.dataset.run{source = digits_file, model = digits.model, out = out, shard_size = 100}
    local full = farol.dataset.load(out)
    -- an interrupted run: chunk 3 never finished (only its temporary file is
    -- there), and chunk 2 is marked so that redoing it would show
    os.remove(out .. "/attr-00003.safetensors")
    os.remove(out .. "/index.json")
    local f = assert(io.open(out .. "/attr-00003.partial.safetensors", "wb"))
    f:write("partial")
    f:close()
    local t2, meta2 = farol.load(out .. "/attr-00002.safetensors")
    t2.attributions = t2.attributions * 0
    farol.save(out .. "/attr-00002.safetensors", t2, {metadata = meta2})
    local s = farol.dataset.run{source = digits_file, model = digits.model, out = out, shard_size = 100}
    assert.are.equal(3, s.chunks_resumed)
    assert.are.equal(100, s.attributed)           -- chunk 3 only
    local again = farol.dataset.load(out)
    H.close(again:narrow(1, 201, 100), full:narrow(1, 201, 100), 1e-5, 1e-7, "chunk 3 redone")
    assert.are.equal(0, again:narrow(1, 101, 100):abs():sum():item())  -- chunk 2 kept as it was
    assert.is_truthy(read(out .. "/index.json"):find('"file": "attr-00003.safetensors"', 1, true))
  end)

  it("runs 3 slices as 3 processes whose merged result equals one run", function()
    local one, three = tmpdir(), tmpdir()
    -- one thread each: float sums split over a different number of threads
    -- (farol adapts it to the machine's load) may differ in the last bit
    local opts = " --data " .. digits_file .. " --shard-size 50 --method Saliency --threads 1"
    assert.are.equal(0, (sh(cli .. opts .. " --out " .. one)))
    local cmds = {}
    for k = 1, 3 do cmds[k] = cli .. opts .. " --out " .. three .. " --shard " .. k .. "/3 >/dev/null" end
    local code, _, err = sh("(" .. table.concat(cmds, " & ") .. " & wait)")
    assert.are.equal(0, code, err)
    -- slice 1 of 3 owns chunks 1, 4, 7
    local idx1 = read(three .. "/index-1-of-3.json")
    assert.is_truthy(idx1:find('"attr-00007.safetensors"', 1, true))
    assert.is_falsy(idx1:find('"attr-00002.safetensors"', 1, true))
    code, _, err = sh(runner .. " " .. root .. "/examples/attribute_dataset.lua --merge " .. three)
    assert.are.equal(0, code, err)
    assert.are.equal(read(one .. "/index.json"), read(three .. "/index.json"))
    local a1, i1, t1 = farol.dataset.load(one)
    local a3, i3, t3 = farol.dataset.load(three)
    H.close(a3, a1, 0, 0, "attributions")
    H.close(i3, i1, 0, 0, "index")
    H.close(t3, t1, 0, 0, "targets")
  end)

  it("merge names the chunks still missing", function()
    local out = tmpdir()
    farol.dataset.run{source = digits_file, model = digits.model, out = out, shard_size = 50, shard = "2/3"}
    H.fails(farol.dataset.merge, "farol: dataset.merge: ", "is missing chunks 1, 3, 4, 6, 7 of 8")(out)
  end)

  it("reports and skips a corrupt image, or fails on it, as asked", function()
    local png = read(root .. "/tests/fixtures/viz/rgb.png")
    local dir = digit_folder(6, {["d03b.png"] = "not an image", ["d04b.png"] = png:sub(1, 40)})
    local out = tmpdir()
    local code, stdout, err = sh(cli .. " --data " .. dir .. " --out " .. out .. " --batch 4")
    assert.are.equal(0, code)
    assert.is_truthy(stdout:find("attributed 6 of 8 examples (2 skipped)", 1, true))
    assert.is_truthy(err:find("example 4 (d03b.png): farol: image.load: ", 1, true))
    assert.is_truthy(err:find("example 6 (d04b.png): farol: image.load: ", 1, true))
    local attr, index, _, skipped = farol.dataset.load(out)
    assert.are.same({6, 1, 8, 8}, attr:size())
    assert.are.same({1, 2, 3, 5, 7, 8}, index:totable())
    assert.are.equal("d03b.png", skipped[1].name)
    assert.is_truthy(skipped[2].error:find("truncated", 1, true) or skipped[2].error:find("not a PNG", 1, true))
    local idx = read(out .. "/index.json")
    assert.is_truthy(idx:find('"name": "d04b.png"', 1, true))
    -- d05.png is example 7: its attribution equals Saliency on that picture
    local x = farol.image.load(dir .. "/d05.png"):unsqueeze(1)
    local _, pred = digits.model(x):max(2)
    H.close(attr:narrow(1, 5, 1), farol.Saliency(digits.model):attribute(x, pred:reshape(-1)), 1e-4, 1e-6, "d05")
    -- on_error = fail: the run stops and names the file
    code, _, err = sh(cli .. " --data " .. dir .. " --out " .. tmpdir() .. " --on-error fail")
    assert.are_not.equal(0, code)
    assert.is_truthy(err:find("farol: dataset: example 4 (d03b.png): farol: image.load:", 1, true))
  end)

  it("validates its options", function()
    local out = tmpdir()
    local base = {source = digits_file, model = digits.model, out = out}
    local function with(k, v)
      local o = {}
      for key, val in pairs(base) do o[key] = val end
      o[k] = v
      return o
    end
    H.fails(farol.dataset.run, "farol: dataset.run: unknown option 'batchsize'")(with("batchsize", 3))
    H.fails(farol.dataset.run, "farol: dataset.run: shard must be K/N with 1 <= K <= N", "got 0/3")(with("shard", "0/3"))
    H.fails(farol.dataset.run, "farol: dataset.run: shard must be K/N", "got 4/3")(with("shard", "4/3"))
    H.fails(farol.dataset.run, "farol: dataset.run: on_error must be")(with("on_error", "ignore"))
    H.fails(farol.dataset.run, "farol: dataset.run: method Salency is not a farol attribution method")(with("method", "Salency"))
    H.fails(farol.dataset.run, "farol: dataset.run: target must be")(with("target", "top"))
    H.fails(farol.dataset.run, "farol: dataset.run: batch_size must be a positive integer")(with("batch_size", 0))
    H.fails(farol.dataset.open, "farol: dataset.open: ", "not a folder, and not a file farol can load")(out .. "/nothing")
    H.fails(farol.dataset.open, "farol: dataset.open: unknown option 'keys'")(digits_file, {keys = "images"})
    local code, _, err = sh(cli .. " --data " .. digits_file .. " --out " .. out .. " --shards 1/2")
    assert.are.equal(2, code)
    assert.is_truthy(err:find("unknown argument --shards", 1, true))
  end)
end)
