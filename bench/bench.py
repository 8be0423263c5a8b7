#!/usr/bin/env python3
"""farol against PyTorch on the four benchmark models; run by scripts/bench.

Per model and round, alternating the programs (the order flips every round):
farol at 1 and 2 threads as a user runs it (OPENBLAS_CORETYPE removed from
the environment unless --keep-env), PyTorch (bench/torch_saliency.py) at 2
threads with its default OpenBLAS kernel, with OpenMP's threads waiting
passively (tdef) and with OpenMP's own spinning wait (tact), and PyTorch
with OPENBLAS_CORETYPE set to the kernel farol runs, when that differs from
PyTorch's default (tker).  "PyTorch at its best" is the fastest of those.  Figures are medians over
rounds; each run's peak RSS comes from wait4.  A run during which other
processes used more than 0.15 core on average (/proc/stat busy time minus
this run's own CPU time and minus our own busy loop) is flagged with '!'.
--contended runs a busy loop pinned to the last core for the whole bench.
Standard library only; Python is a tool here, never a farol dependency.
"""
import argparse, os, re, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAROL = os.path.join(ROOT, "build", "farol")
RUN_LUA = os.path.join(ROOT, "bench", "run.lua")
TORCH = os.path.join(ROOT, "bench", "torch_saliency.py")
PEAK = os.path.join(ROOT, "build", "sgemm_peak")
MODELS = ["mlp", "cnn", "resnet18", "transformer"]
CLK = os.sysconf("SC_CLK_TCK")
MAX_FOREIGN = 0.15


def parse():
    ap = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=" ".join(MODELS),
                    help="space- or comma-separated subset of: " + " ".join(MODELS))
    ap.add_argument("--rounds", type=int, default=3, help="rounds per model (>= 1, default 3)")
    ap.add_argument("--repeats", type=int, default=10,
                    help="timed calls per run (default 10; fewer only for a quick look)")
    ap.add_argument("--threads", type=int, default=2, help="the multi-thread count (default 2)")
    ap.add_argument("--contended", action="store_true", help="keep one core busy with a loop")
    ap.add_argument("--keep-env", action="store_true",
                    help="run farol with OPENBLAS_CORETYPE as set here (default: removed)")
    ap.add_argument("--no-torch", action="store_true", help="farol only")
    a = ap.parse_args()
    a.models = [m for m in re.split(r"[,\s]+", a.models) if m]
    bad = [m for m in a.models if m not in MODELS]
    if bad or not a.models:
        ap.error("unknown model(s) %s; choose from %s" % (" ".join(bad), " ".join(MODELS)))
    if a.rounds < 1 or a.repeats < 1 or a.threads < 2:
        ap.error("--rounds and --repeats must be >= 1, --threads >= 2")
    return a


def busy_s():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / CLK  # user nice system irq softirq steal


def pid_cpu_s(pid):
    if not pid:
        return 0.0
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK
    except OSError:
        return 0.0


def spawn(cmd, env, loop_pid):
    """runs cmd; returns its stdout, its rusage and the other processes' load
    (cores on average) while it ran"""
    b0, l0, t0 = busy_s(), pid_cpu_s(loop_pid), time.monotonic()
    with tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=err)
        out = p.stdout.read()
        _, status, ru = os.wait4(p.pid, 0)  # reaps it: Popen must not
        p.returncode = status
        wall = time.monotonic() - t0
        if status != 0:
            err.seek(0)
            sys.exit("bench: %s failed (status %d):\n%s" % (" ".join(cmd), status, err.read().decode()[-2000:]))
    foreign = (busy_s() - b0 - (ru.ru_utime + ru.ru_stime) - (pid_cpu_s(loop_pid) - l0)) / wall
    return out.decode(), ru, max(0.0, foreign)


def measured(cmd, env, loop_pid):
    """runs cmd and parses its `bench ...` line into a dict, adding rss_mib
    (peak RSS from wait4) and foreign (other processes' cores on average)"""
    out, ru, foreign = spawn(cmd, env, loop_pid)
    line = [l for l in out.splitlines() if l.startswith("bench ")]
    if not line:
        sys.exit("bench: no result line from %s:\n%s" % (" ".join(cmd), out))
    d = dict(kv.split("=", 1) for kv in line[-1].split()[1:])
    d["rss_mib"] = ru.ru_maxrss / 1024
    d["foreign"] = foreign
    return d


def busy_loop():
    """a child spinning on the last core: one core of foreign load"""
    code = "import os\nos.sched_setaffinity(0, {%d})\nwhile True: pass\n" % (os.cpu_count() - 1)
    return subprocess.Popen([sys.executable, "-c", code])


def cpu_name():
    name, fam, model = "unknown", "?", "?"
    with open("/proc/cpuinfo") as f:
        for l in f:
            k, _, v = l.partition(":")
            k, v = k.strip(), v.strip()
            if k == "model name" and name == "unknown": name = v
            if k == "cpu family" and fam == "?": fam = v
            if k == "model" and model == "?": model = v
    return "%s (family 0x%x, model 0x%x, %d cores)" % (name, int(fam), int(model), os.cpu_count())


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def main():
    a = parse()
    farol_env = dict(os.environ)
    if not a.keep_env:
        farol_env.pop("OPENBLAS_CORETYPE", None)
    torch_env = dict(os.environ)
    torch_env.pop("OPENBLAS_CORETYPE", None)
    loop = busy_loop() if a.contended else None
    loop_pid = loop.pid if loop else 0
    try:
        cfg_lua = ("local c = require('farol').config() print(string.format('config blas_core=%s "
                   "chosen_by=%s dnnl_isa=%s kernel_isa=%s blas=%s', c.blas_core, "
                   "c.blas_core_chosen_by:gsub(' ', '_'), c.dnnl_isa or 'none', "
                   "c.kernel_isa:gsub(' ', '_'), c.blas_version))")
        cfg = subprocess.run([FAROL, "-e", cfg_lua], env=farol_env, capture_output=True, text=True,
                             check=True).stdout.strip()
        core = re.search(r"blas_core=(\S+)", cfg).group(1)
        print("# cpu: %s" % cpu_name())
        print("# farol: %s (OPENBLAS_CORETYPE %s)" % (cfg[len("config "):], "as set" if a.keep_env else "removed"))
        print("# rounds=%d repeats=%d contended=%s" % (a.rounds, a.repeats, "yes" if a.contended else "no"))
        peak = {}
        out, _, foreign = spawn([PEAK], farol_env, loop_pid)
        for l in out.splitlines():
            m = re.match(r"sgemm threads=(\d+) .*gflops=([\d.]+)", l)
            if m: peak[int(m.group(1))] = float(m.group(2))
            print("# " + l)
        print("# sgemm foreign_cores=%.2f%s" % (foreign, "  ! other load: the peak is low" if foreign > MAX_FOREIGN else ""))
        sys.stdout.flush()
        summary = []
        for model in a.models:
            runs = {k: [] for k in ("f1", "fN", "tdef", "tact", "tker")}
            torch_core = None
            for r in range(a.rounds):
                # tdef before tker in round 1: its run tells PyTorch's default core
                order = ["f1", "tdef", "fN", "tact", "tker"] if r % 2 == 0 else ["tker", "tact", "fN", "tdef", "f1"]
                for k in order:
                    if a.no_torch and k[0] == "t": continue
                    if k == "tker" and (torch_core is None or torch_core == core): continue
                    if k[0] == "f":
                        t = 1 if k == "f1" else a.threads
                        cmd = [FAROL, RUN_LUA, "--model", model, "--threads", str(t), "--repeats", str(a.repeats)]
                        env = farol_env
                    else:
                        cmd = ["/usr/bin/python3", TORCH, "--model", model, "--threads", str(a.threads),
                               "--repeats", str(a.repeats), "--wait", "active" if k == "tact" else "passive"]
                        env = dict(torch_env, OPENBLAS_CORETYPE=core) if k == "tker" else torch_env
                    d = measured(cmd, env, loop_pid)
                    if k == "tdef": torch_core = d.get("blas_core")
                    d["flag"] = "!" if d["foreign"] > MAX_FOREIGN else ""
                    runs[k].append(d)
                    print("round=%d %-4s %s saliency_ms=%s forward_ms=%s rss_mib=%.0f foreign_cores=%.2f%s" % (
                        r + 1, k, model, d["saliency_ms"], d["forward_ms"], d["rss_mib"], d["foreign"],
                        "  ! other load" if d["flag"] else ""))
                    sys.stdout.flush()
            med = {k: median([float(d["saliency_ms"]) for d in v]) for k, v in runs.items()}
            rss = {k: median([d["rss_mib"] for d in v]) for k, v in runs.items()}
            flagged = sum(1 for v in runs.values() for d in v if d["flag"])
            total = sum(len(v) for v in runs.values())
            fgf = median([float(d["gflops"]) for d in runs["fN"]])
            share = 100 * fgf / peak[a.threads] if peak.get(a.threads) else float("nan")
            line = ("bench model=%s farol_1t_ms=%.2f farol_%dt_ms=%.2f" % (model, med["f1"], a.threads, med["fN"]))
            if not a.no_torch:
                best = min(x for x in (med["tdef"], med["tact"], med["tker"]) if x == x)
                line += (" torch_default_ms=%.2f torch_active_wait_ms=%.2f torch_default_core=%s torch_kernel_ms=%s"
                         " torch_best_ms=%.2f ratio=%.3f farol_rss_mib=%.0f torch_rss_mib=%.0f rss_ratio=%.2f" % (
                             med["tdef"], med["tact"], torch_core,
                             "%.2f" % med["tker"] if runs["tker"] else "same_core",
                             best, med["fN"] / best, rss["fN"], rss["tdef"], rss["fN"] / rss["tdef"]))
            else:
                line += " farol_rss_mib=%.0f" % rss["fN"]
            line += (" farol_gflops=%.1f sgemm_peak_%dt=%.1f share_of_peak=%.0f%% 2t_over_1t=%.2f flagged=%d/%d" % (
                fgf, a.threads, peak.get(a.threads, float("nan")), share, med["fN"] / med["f1"], flagged, total))
            summary.append(line)
            print(line)
            sys.stdout.flush()
        print("# summary (medians over rounds; ratio = farol %dT / PyTorch at its best; '!' runs had other load)" % a.threads)
        for l in summary:
            print(l)
    finally:
        if loop:
            loop.kill()
            loop.wait()


if __name__ == "__main__":
    main()
