-- farol.config(): what farol runs on (BLAS kernel, oneDNN, own kernels, threads).
local farol = require("farol")

describe("farol.config", function()
  it("names the BLAS, its version and kernel, who chose it, and the thread count", function()
    local c = farol.config()
    assert.matches("^OpenBLAS ", c.blas)
    assert.matches("^%d+%.%d+%.%d+", c.blas_version)
    assert.matches(c.blas_core, c.blas, 1, true)   -- OpenBLAS's own description ends with it
    local user = os.getenv("OPENBLAS_CORETYPE")
    if user and user ~= "" then
      assert.equals("user (OPENBLAS_CORETYPE)", c.blas_core_chosen_by)
      assert.is_nil(c.blas_core_replaced)
    else
      assert.truthy(c.blas_core_chosen_by == "openblas" or c.blas_core_chosen_by == "farol")
    end
    assert.is_string(c.kernel_isa)
    assert.equals(farol.get_num_threads(), c.threads)
    if c.dnnl_version then assert.matches("^%d+%.%d+%.%d+$", c.dnnl_version); assert.is_string(c.dnnl_isa) end
  end)

  it("follows set_num_threads", function()
    local n = farol.get_num_threads()
    farol.set_num_threads(1)
    assert.equals(1, farol.config().threads)
    farol.set_num_threads(n)
  end)

  it("refuses arguments", function()
    assert.has_error(function() farol.config(1) end, "farol: config: takes no arguments, got 1")
  end)
end)
