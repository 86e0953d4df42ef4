#!/usr/bin/env python3
"""Load-tests oauth-mcp on sled and on PostgreSQL (1..n instances on one database), the
method of BENCHMARKS.md, "PostgreSQL" (issue 14).

Usage:
  tools/bench-postgres.py --bin target/release/oauth-mcp --db postgres://postgres@127.0.0.1:PORT \
      --pgdata /path/to/cluster/data \
      --config sled --config pg:1:2 --config pg:3:2 \
      --scenarios refresh,code,client-credentials,tools-call --concurrency 16,64 \
      --repeats 2 --out results.jsonl

A config is `sled` (a fresh --data-dir) or `pg:INSTANCES:LANES` (a fresh database `bench`
in the cluster of --db, which must be a superuser URL with pg_stat_statements loaded;
INSTANCES servers share it, one --key-file and one --public-url; LANES is
OAUTH_MCP_PG_BATCH_LANES, 0 = no batching); `old-pg:...` is the same with the binary of
--old-bin (an A/B of two builds). Configs are run in turn, each repeat in the same order
(A/B alternated), every scenario on fresh servers.

Per run, besides the load generator's report, it records: the servers' CPU time, the
PostgreSQL processes' CPU time, the generator's own CPU time, the transactions committed
(pg_stat_database.xact_commit) and the calls of the statements that read a token by key
(pg_stat_statements), each as a delta over the loadtest invocation (preparation and
warm-up included), and the load average. One JSON object per line to --out.
"""

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

BASE_PORT = 18000


def cpu_of(pid, children=False):
    """User+system CPU seconds of a process (and its reaped children)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def postgres_cpu(data_dir):
    """CPU seconds of every postgres process now running, plus what the postmaster reaped
    (its children's CPU moves there when they exit)."""
    with open(os.path.join(data_dir, "postmaster.pid")) as f:
        postmaster = f.readline().strip()
    total = cpu_of(postmaster, children=True)
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or pid == postmaster:
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = f.read().rsplit(")", 1)[1].split()[1]
        except OSError:
            continue
        if ppid == postmaster:
            total += cpu_of(pid)
    return total


def psql(db, sql):
    out = subprocess.run(
        ["psql", db, "-At", "-c", sql], check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


def db_url(base, name):
    """`base` with database `name` (its query, e.g. `?host=/tmp` for a Unix socket, kept)."""
    path, query = (base.split("?", 1) + [""])[:2]
    return path.rsplit("/", 1)[0] + "/" + name + ("?" + query if query else "")


def stats(db):
    commits = int(psql(db_url(db, "postgres"),
                       "SELECT xact_commit FROM pg_stat_database WHERE datname = 'bench'") or 0)
    token_reads = int(psql(db_url(db, "postgres"),
                           "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s "
                           "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = 'bench' "
                           "AND query LIKE 'SELECT kind, grant_id, client_id, subject%FROM tokens%WHERE key = $1%'") or 0)
    return commits, token_reads


def wait_ready(port, deadline=30):
    start = time.time()
    while time.time() - start < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server on {port} not ready")


def start(args, config, workdir):
    """Starts the servers of `config`; answers (processes, urls)."""
    env = dict(os.environ, RUST_LOG="warn")
    binary = args.bin
    if config.startswith("old-"):
        binary, config = args.old_bin, config[len("old-"):]
    key = os.path.join(workdir, "server.key")
    with open(key, "wb") as f:
        f.write(os.urandom(32))
    procs, urls = [], []
    public = f"http://127.0.0.1:{BASE_PORT}"
    if config == "sled":
        data = os.path.join(workdir, "data")
        cmd = [binary, "--bind", f"127.0.0.1:{BASE_PORT}", "--data-dir", data]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                      stderr=open(os.path.join(workdir, "server0.log"), "w")))
        urls.append(public)
    else:
        _, n, lanes = config.split(":")
        admin = db_url(args.db, "postgres")
        psql(admin, "DROP DATABASE IF EXISTS bench WITH (FORCE)")
        psql(admin, "CREATE DATABASE bench")
        env["OAUTH_MCP_PG_BATCH_LANES"] = lanes
        for i in range(int(n)):
            port = BASE_PORT + i
            cmd = [binary, "--bind", f"127.0.0.1:{port}", "--public-url", public,
                   "--data-dir", os.path.join(workdir, f"data{i}"), "--key-file", key,
                   "--database-url", db_url(args.db, "bench")]
            procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                          stderr=open(os.path.join(workdir, f"server{i}.log"), "w")))
            urls.append(f"http://127.0.0.1:{port}")
            # The first creates the schema and the demo records; the others find them.
            wait_ready(port)
    for u in urls:
        wait_ready(int(u.rsplit(":", 1)[1]))
    return procs, urls


def stop(procs):
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def run_one(args, config, scenario, out):
    with tempfile.TemporaryDirectory(prefix="oauth-mcp-bench-") as workdir:
        procs, urls = start(args, config, workdir)
        try:
            pg = not config.endswith("sled")
            before = stats(args.db) if pg else (0, 0)
            pg_cpu0 = postgres_cpu(args.pgdata)
            srv_cpu0 = sum(cpu_of(p.pid) for p in procs)
            gen0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            load0 = os.getloadavg()[0]
            jpath = os.path.join(workdir, "r.json")
            cmd = [args.bin, "loadtest", "--url", ",".join(urls),
                   "--scenarios", scenario, "--concurrency", args.concurrency,
                   "--duration", str(args.duration), "--warmup", "1",
                   "--codes", str(args.codes),
                   "--server-pid", ",".join(str(p.pid) for p in procs), "--json", jpath]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            gen1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            srv_cpu1 = sum(cpu_of(p.pid) for p in procs)
            pg_cpu1 = postgres_cpu(args.pgdata)
            if pg:
                time.sleep(1.5)  # backends report their counters about once a second
            after = stats(args.db) if pg else (0, 0)
            with open(jpath) as f:
                reports = json.load(f)
            record = {
                "time": time.strftime("%H:%M:%S", time.gmtime()),
                "config": config,
                "scenario": scenario,
                "load1": round(load0, 2),
                "server_cpu_s": round(srv_cpu1 - srv_cpu0, 2),
                "postgres_cpu_s": round(pg_cpu1 - pg_cpu0, 2),
                "generator_cpu_s": round((gen1.ru_utime + gen1.ru_stime)
                                         - (gen0.ru_utime + gen0.ru_stime), 2),
                "xact_commit": after[0] - before[0],
                "token_reads": after[1] - before[1],
                "reports": reports,
            }
            out.write(json.dumps(record) + "\n")
            out.flush()
            for r in reports:
                print(f"{record['time']} {config:10} {scenario:18} c={r['concurrency']:<3} "
                      f"{r['rps']:>8.0f}/s p50 {r['p50_us']:>6} p99 {r['p99_us']:>6} "
                      f"cpu/req {r.get('server_cpu_us') or 0:>5.0f}µs "
                      f"errors {r['errors'] or '-'}  load {load0:.1f} "
                      f"commits {record['xact_commit']} token_reads {record['token_reads']}",
                      flush=True)
        finally:
            stop(procs)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--old-bin", help="the binary of `old-` configs")
    ap.add_argument("--db", required=True, help="superuser URL of the cluster")
    ap.add_argument("--pgdata", required=True, help="the cluster's data directory (its postmaster.pid)")
    ap.add_argument("--config", action="append", required=True)
    ap.add_argument("--scenarios", default="refresh,code,client-credentials,tools-call")
    ap.add_argument("--concurrency", default="16,64")
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--codes", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    with open(args.out, "a") as out:
        for _ in range(args.repeats):
            for scenario in args.scenarios.split(","):
                for config in args.config:
                    run_one(args, config, scenario, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
