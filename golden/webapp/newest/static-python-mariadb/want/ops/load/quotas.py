#!/usr/bin/env python3
"""Propose CPU and memory limits per compose service from a load test.

Reads the JSON summary a k6 profile of ops/load writes (its handleSummary data) and the
resource peaks observed while the load test ran, either

  * `docker stats --no-stream --format '{{json .}}'` samples, one JSON object a line
    (ops/load/run.sh records them to ops/load/results/<profile>-docker-stats.jsonl), or
  * two Prometheus query results (/api/v1/query or /api/v1/query_range) over cAdvisor:
    the memory working set in bytes and the CPU usage rate in cores per container
    (see ops/load/README.md for the queries),

and proposes limits with the headroom rule below. It prints a Markdown report and can
update the measurements section of docs/capacity.md and print compose YAML.

Headroom rule (per container; a service's peak is its busiest replica):
  memory = peak working set x 1.5, rounded up to a multiple of 64 MiB, at least 64 MiB
  cpus   = peak cores x 2, rounded up to a multiple of 0.25, at least 0.25
Memory is a hard limit (the kernel kills the container above it) and ContainerMemoryNearLimit
fires at 90 % of it: at the measured peak a container uses 2/3 of its limit, which leaves
room for what a load test does not reach (caches filling, GC cycles, a slow query holding
rows) before the alert and far before an OOM kill. CPU is only throttled, but throttling is
measured per 100 ms period while samples average over seconds: twice the peak keeps short
bursts from being throttled (ContainerCpuThrottled fires at 25 % of periods) and absorbs the
extra share each replica takes when one of two restarts.

Exit status: 0 limits proposed, 1 the load test failed its thresholds (or reached less than
90 % of --target-rps): the numbers are printed but not trustworthy, and --write-doc refuses
without --force; 2 bad input or usage.

Python 3.8 or newer, standard library only.
"""

import argparse
import json
import math
import os
import re
import sys
from pathlib import Path

MIB = 1024 * 1024
MEMORY_HEADROOM = 1.5
MEMORY_STEP = 64 * MIB
MEMORY_MIN = 64 * MIB
CPU_HEADROOM = 2.0
CPU_STEP = 0.25
CPU_MIN = 0.25
# A run that reached less than this share of the expected peak did not measure the peak.
MIN_RPS_SHARE = 0.9

BEGIN_MARKER = "<!-- quotas:begin -->"
END_MARKER = "<!-- quotas:end -->"

# Services that compose.monitoring.yaml defines; every other one is in compose.prod.yaml.
MONITORING_SERVICES = {
    "prometheus", "alertmanager", "grafana", "node-exporter", "cadvisor",
    "db-exporter", "db-replica-exporter", "redis-exporter", "blackbox",
}

ROOT = Path(__file__).resolve().parent.parent.parent


class InputError(Exception):
    """A problem with an input file or argument, reported without a traceback."""


# ---------------------------------------------------------------- parsing

_UNITS = {
    "b": 1,
    "kb": 1000, "mb": 1000 ** 2, "gb": 1000 ** 3, "tb": 1000 ** 4,
    "kib": 1024, "mib": 1024 ** 2, "gib": 1024 ** 3, "tib": 1024 ** 4,
    # docker's own short forms
    "k": 1000, "m": 1000 ** 2, "g": 1000 ** 3,
}
_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$")


def parse_size(text):
    """Bytes in a docker size such as '123.4MiB', '1.2GiB', '512kB' or '0B'."""
    m = _SIZE_RE.match(text)
    if not m:
        raise ValueError("not a size: %r" % text)
    unit = m.group(2).lower() or "b"
    if unit not in _UNITS:
        raise ValueError("unknown size unit in %r" % text)
    return int(round(float(m.group(1)) * _UNITS[unit]))


def parse_percent(text):
    """Cores in a docker CPU percentage ('12.34%' is 0.1234 cores; 100% is one core)."""
    t = text.strip()
    if t in ("--", ""):
        return 0.0
    if not t.endswith("%"):
        raise ValueError("not a percentage: %r" % text)
    return float(t[:-1]) / 100.0


def _load_json(path, what):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise InputError("%s: no such file (%s)" % (path, what))
    except json.JSONDecodeError as e:
        raise InputError("%s: not JSON (%s): line %d column %d: %s" % (path, what, e.lineno, e.colno, e.msg))
    except OSError as e:
        raise InputError("%s: %s" % (path, e.strerror or e))


def load_summary(path):
    """The figures of a k6 handleSummary JSON that the report needs."""
    data = _load_json(path, "k6 summary")
    metrics = data.get("metrics") if isinstance(data, dict) else None
    if not isinstance(metrics, dict):
        raise InputError("%s: not a k6 summary: no \"metrics\" object (write it with handleSummary: "
                         "JSON.stringify(data))" % path)

    def value(metric, key, required=True):
        m = metrics.get(metric)
        if not isinstance(m, dict) or not isinstance(m.get("values"), dict):
            if required:
                raise InputError("%s: not a k6 handleSummary JSON: metrics.%s.values is missing" % (path, metric))
            return None
        v = m["values"].get(key)
        if v is None:
            if required:
                raise InputError("%s: metrics.%s.values[%r] is missing (add it to summaryTrendStats)" % (path, metric, key))
            return None
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise InputError("%s: metrics.%s.values[%r] is not a number: %r" % (path, metric, key, v))
        return float(v)

    failed = []
    for name in sorted(metrics):
        m = metrics[name]
        thresholds = m.get("thresholds") if isinstance(m, dict) else None
        if not thresholds:
            continue
        if not isinstance(thresholds, dict):
            raise InputError("%s: metrics.%s.thresholds is not an object" % (path, name))
        for expr in sorted(thresholds):
            t = thresholds[expr]
            if not isinstance(t, dict) or not isinstance(t.get("ok"), bool):
                raise InputError("%s: metrics.%s.thresholds[%r] has no boolean \"ok\" "
                                 "(the --summary-export format is not supported; use handleSummary)" % (path, name, expr))
            if not t["ok"]:
                failed.append("%s %s" % (name, expr))

    state = data.get("state") if isinstance(data.get("state"), dict) else {}
    duration = state.get("testRunDurationMs")
    # ops/load/lib/common.js adds a "profile" object: the profile's name and, for the load
    # profile, what was measured while the peak was held (the whole run's rate includes the ramps).
    profile = data.get("profile") if isinstance(data.get("profile"), dict) else {}
    hold = profile.get("hold") if isinstance(profile.get("hold"), dict) else None
    if hold is not None:
        for key in ("seconds", "requests", "rps"):
            if not isinstance(hold.get(key), (int, float)) or isinstance(hold.get(key), bool):
                raise InputError("%s: profile.hold.%s is not a number: %r" % (path, key, hold.get(key)))
        hold = {k: hold.get(k) for k in ("seconds", "requests", "rps", "p95_ms", "p99_ms", "failed_rate")}
    return {
        "profile": profile.get("name") if isinstance(profile.get("name"), str) else None,
        "hold": hold,
        "file": str(path),
        "requests": int(value("http_reqs", "count")),
        "rps": value("http_reqs", "rate"),
        "p95_ms": value("http_req_duration", "p(95)"),
        "p99_ms": value("http_req_duration", "p(99)", required=False),
        "failed_rate": value("http_req_failed", "rate"),
        "checks_rate": value("checks", "rate", required=False),
        "vus_max": value("vus_max", "max", required=False) or value("vus_max", "value", required=False),
        "duration_s": round(duration / 1000.0, 1) if isinstance(duration, (int, float)) else None,
        "failed_thresholds": failed,
    }


# ---------------------------------------------------------------- services

def default_project():
    """The compose project: COMPOSE_PROJECT_NAME, from the environment or .env, else compose.yaml's name."""
    if os.environ.get("COMPOSE_PROJECT_NAME"):
        return os.environ["COMPOSE_PROJECT_NAME"]
    env = ROOT / ".env"
    if env.is_file():
        for line in env.read_text(encoding="utf-8", errors="replace").splitlines():
            m = re.match(r"^\s*COMPOSE_PROJECT_NAME\s*=\s*['\"]?([A-Za-z0-9_.-]+)", line)
            if m:
                return m.group(1)
    compose = ROOT / "compose.yaml"
    if compose.is_file():
        for line in compose.read_text(encoding="utf-8", errors="replace").splitlines():
            m = re.match(r"^name:\s*['\"]?([A-Za-z0-9_.-]+)", line)
            if m:
                return m.group(1)
    return None


def service_of(container, project):
    """The compose service of a container name: <project>-<service>-<n> (or _ separators).

    Returns None for a container of another project."""
    name = container.lstrip("/")
    if project:
        for sep in ("-", "_"):
            if name.startswith(project + sep):
                name = name[len(project) + 1:]
                break
        else:
            return None
    return re.sub(r"[-_][0-9]+$", "", name)


# ---------------------------------------------------------------- resource samples

def load_docker_stats(path, project):
    """Per-container peaks from `docker stats --format '{{json .}}'` lines."""
    peaks = {}
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise InputError("%s: no such file (docker stats samples)" % path)
    except OSError as e:
        raise InputError("%s: %s" % (path, e.strerror or e))
    seen = 0
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError("%s:%d: not a JSON line of docker stats --format '{{json .}}': %s" % (path, n, e.msg))
        if not isinstance(row, dict) or not {"Name", "CPUPerc", "MemUsage"} <= set(row):
            raise InputError("%s:%d: a docker stats sample needs Name, CPUPerc and MemUsage" % (path, n))
        seen += 1
        service = service_of(row["Name"], project)
        if service is None:
            continue
        try:
            cpu = parse_percent(row["CPUPerc"])
            used = row["MemUsage"].split("/")[0].strip()
            mem = 0 if used in ("--", "") else parse_size(used)
        except (ValueError, AttributeError) as e:
            raise InputError("%s:%d: %s" % (path, n, e))
        p = peaks.setdefault(row["Name"], {"service": service, "cpu": 0.0, "memory": 0})
        p["cpu"] = max(p["cpu"], cpu)
        p["memory"] = max(p["memory"], mem)
    if seen == 0:
        raise InputError("%s: no samples (record them while the load test runs: make load)" % path)
    if not peaks:
        raise InputError("%s: no container of compose project %r (set --project)" % (path, project))
    return peaks


def _prom_series(path, what):
    data = _load_json(path, what)
    if not isinstance(data, dict) or "status" not in data:
        raise InputError("%s: not a Prometheus API response (want {\"status\": \"success\", \"data\": ...})" % path)
    if data.get("status") != "success":
        raise InputError("%s: the Prometheus query failed: %s" % (path, data.get("error", data.get("status"))))
    d = data["data"]
    kind = d.get("resultType") if isinstance(d, dict) else None
    if kind not in ("matrix", "vector"):
        raise InputError("%s: resultType %r: want a matrix (query_range) or a vector (query)" % (path, kind))
    out = []
    for s in d.get("result") or []:
        metric = s.get("metric", {})
        points = s.get("values", []) if kind == "matrix" else [s.get("value")]
        vals = []
        for pt in points:
            try:
                v = float(pt[1])
            except (TypeError, ValueError, IndexError):
                raise InputError("%s: a sample of %s is not [time, \"value\"]: %r" % (path, metric, pt))
            if not math.isnan(v):
                vals.append(v)
        if vals:
            out.append((metric, max(vals)))
    if not out:
        raise InputError("%s: the query returned no samples (check the time range and the project label)" % path)
    return out


def _prom_container(metric, project):
    """(container, service) of a cAdvisor series, or None when it is not a compose container."""
    if project and metric.get("container_label_com_docker_compose_project") not in (None, project):
        return None
    service = metric.get("container_label_com_docker_compose_service") or metric.get("service")
    name = metric.get("name") or metric.get("container") or metric.get("id")
    if not service and metric.get("name"):
        service = service_of(metric["name"], project)
    if not service:
        return None
    return (name or service), service


def load_prometheus(memory_path, cpu_path, project):
    """Per-container peaks from a memory (bytes) and a CPU (cores) Prometheus result."""
    peaks = {}
    for path, key, what in ((memory_path, "memory", "Prometheus memory result"),
                            (cpu_path, "cpu", "Prometheus CPU result")):
        for metric, peak in _prom_series(path, what):
            c = _prom_container(metric, project)
            if c is None:
                continue
            p = peaks.setdefault(c[0], {"service": c[1], "cpu": 0.0, "memory": 0})
            p[key] = max(p[key], int(round(peak)) if key == "memory" else peak)
    if not peaks:
        raise InputError("%s, %s: no series with a compose service label of project %r" % (memory_path, cpu_path, project))
    return peaks


# ---------------------------------------------------------------- the rule

def memory_limit(peak_bytes, headroom=MEMORY_HEADROOM):
    want = peak_bytes * headroom
    steps = max(1, math.ceil(want / MEMORY_STEP - 1e-9))
    return max(MEMORY_MIN, steps * MEMORY_STEP)


def cpu_limit(peak_cores, headroom=CPU_HEADROOM):
    steps = max(1, math.ceil(peak_cores * headroom / CPU_STEP - 1e-9))
    return max(CPU_MIN, steps * CPU_STEP)


def fmt_cpus(c):
    """Compose's cpus: '0.25', '0.5', '1.0', '1.25'."""
    s = ("%.2f" % c).rstrip("0")
    return s + "0" if s.endswith(".") else s


def fmt_mem(b):
    """Compose's memory in MiB: '192m'."""
    return "%dm" % (b // MIB)


def fmt_mib(b):
    return "%.1f MiB" % (b / MIB)


def propose(peaks, memory_headroom=MEMORY_HEADROOM, cpu_headroom=CPU_HEADROOM):
    services = {}
    for container in sorted(peaks):
        p = peaks[container]
        s = services.setdefault(p["service"], {"service": p["service"], "containers": 0,
                                               "peak_cpu": 0.0, "peak_memory": 0})
        s["containers"] += 1
        s["peak_cpu"] = max(s["peak_cpu"], p["cpu"])
        s["peak_memory"] = max(s["peak_memory"], p["memory"])
    rows = []
    for name in sorted(services):
        s = services[name]
        s["peak_cpu"] = round(s["peak_cpu"], 4)
        s["peak_memory_mib"] = round(s["peak_memory"] / MIB, 1)
        s["cpus"] = fmt_cpus(cpu_limit(s["peak_cpu"], cpu_headroom))
        s["memory"] = fmt_mem(memory_limit(s["peak_memory"], memory_headroom))
        s["file"] = "compose.monitoring.yaml" if name in MONITORING_SERVICES else "compose.prod.yaml"
        rows.append(s)
    return rows


def default_limits(rows):
    """The largest proposal among the compose.prod.yaml services: one limit that fits them all."""
    app = [r for r in rows if r["file"] == "compose.prod.yaml"]
    if not app:
        return None
    cpus = max(float(r["cpus"]) for r in app)
    mem = max(int(r["memory"][:-1]) for r in app)
    return {"cpus": fmt_cpus(cpus), "memory": "%dm" % mem}


# ---------------------------------------------------------------- output

def trust_problems(summary, target_rps):
    problems = []
    if summary["failed_thresholds"]:
        problems.append("the load test failed its thresholds: " + ", ".join(summary["failed_thresholds"]))
    if summary["profile"] not in (None, "load", "stress"):
        problems.append("the %s profile does not load the application: run the load profile" % summary["profile"])
    # The hold's rate when the summary has it; the whole run's rate includes the ramps.
    rps = summary["hold"]["rps"] if summary["hold"] else summary["rps"]
    if target_rps and rps < MIN_RPS_SHARE * target_rps:
        problems.append("it reached %.1f req/s, less than %d%% of the expected peak of %g req/s"
                        % (rps, MIN_RPS_SHARE * 100, target_rps))
    return problems


def markdown(summary, source, rows, problems, memory_headroom, cpu_headroom):
    s = summary
    parts = ["%d requests" % s["requests"]]
    if s["duration_s"] is not None:
        parts.append("in %g s" % s["duration_s"])
    parts.append("%.1f req/s" % s["rps"])
    parts.append("p95 %.1f ms" % s["p95_ms"])
    if s["p99_ms"] is not None:
        parts.append("p99 %.1f ms" % s["p99_ms"])
    parts.append("failed %.2f%%" % (s["failed_rate"] * 100))
    if s["checks_rate"] is not None:
        parts.append("checks %.2f%%" % (s["checks_rate"] * 100))
    if s["vus_max"] is not None:
        parts.append("%d VUs at most" % s["vus_max"])
    out = ["Load test: `%s`%s: %s." % (s["file"], " (profile %s)" % s["profile"] if s["profile"] else "", ", ".join(parts))]
    h = s["hold"]
    if h:
        hp = ["%d requests in %g s" % (h["requests"], h["seconds"]), "%.1f req/s" % h["rps"]]
        if isinstance(h.get("p95_ms"), (int, float)):
            hp.append("p95 %.1f ms" % h["p95_ms"])
        if isinstance(h.get("failed_rate"), (int, float)):
            hp.append("failed %.2f%%" % (h["failed_rate"] * 100))
        out.append("Hold at the peak: %s." % ", ".join(hp))
    out += [
        "Thresholds: %s." % ("**FAILED**: " + ", ".join(s["failed_thresholds"]) if s["failed_thresholds"] else "passed"),
        "Resource peaks: %s." % source,
        "",
        "| service | containers | peak CPU (cores) | peak memory | proposed cpus | proposed memory | file |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append("| %s | %d | %.3f | %s | %s | %s | %s |" % (
            r["service"], r["containers"], r["peak_cpu"], fmt_mib(r["peak_memory"]),
            r["cpus"], r["memory"], r["file"]))
    out += [
        "",
        "Rule: memory = peak x %g rounded up to 64 MiB (at least 64 MiB); cpus = peak cores x %g "
        "rounded up to 0.25 (at least 0.25); per container, the busiest replica counts." % (memory_headroom, cpu_headroom),
    ]
    d = default_limits(rows)
    if d:
        out += [
            "",
            "One limit for every service of compose.prod.yaml (its `x-resources` default, from the answers "
            "`cpu_limit` and `memory_limit`): cpus %s, memory %s; "
            "`opsready upgrade --set cpu_limit=%s --set memory_limit=%s` sets it." % (d["cpus"], d["memory"], d["cpus"], d["memory"]),
        ]
    if problems:
        out += ["", "**Not trustworthy**: " + "; ".join(problems) + ". Fix the cause and run the load test again."]
    return "\n".join(out) + "\n"


def compose_yaml(rows):
    out = []
    for file in ("compose.prod.yaml", "compose.monitoring.yaml"):
        chosen = [r for r in rows if r["file"] == file]
        if not chosen:
            continue
        out.append("# %s: replace `resources: *resources` of each service with" % file)
        out.append("services:")
        for r in chosen:
            out += [
                "  %s:" % r["service"],
                "    deploy:",
                "      resources:",
                "        limits:",
                "          cpus: \"%s\"" % r["cpus"],
                "          memory: %s" % r["memory"],
            ]
    return "\n".join(out) + "\n"


def write_doc(path, section):
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("%s: no such file" % path)
    begin, end = text.find(BEGIN_MARKER), text.find(END_MARKER)
    if begin < 0 or end < 0 or end < begin:
        raise InputError("%s: the markers %s and %s (in this order) are missing" % (path, BEGIN_MARKER, END_MARKER))
    new = text[:begin + len(BEGIN_MARKER)] + "\n" + section + text[end:]
    Path(path).write_text(new, encoding="utf-8")


def newest_run(results):
    """(summary, docker stats file or None, (prom memory, prom cpu) or None) of the newest run."""
    d = Path(results)
    summaries = sorted(d.glob("*-summary.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    if not summaries:
        raise InputError("%s: no k6 summary (*-summary.json); run `make load PROFILE=load` first" % results)
    summary = summaries[0]
    profile = summary.name[:-len("-summary.json")]
    stats = d / ("%s-docker-stats.jsonl" % profile)
    prom = (d / ("%s-prom-memory.json" % profile), d / ("%s-prom-cpu.json" % profile))
    have_prom = prom[0].is_file() and prom[1].is_file()
    if have_prom and (not stats.is_file() or prom[0].stat().st_mtime >= stats.stat().st_mtime):
        return summary, None, prom
    if stats.is_file():
        return summary, stats, None
    raise InputError("%s: no resource samples for %s: want %s, or %s and %s (see ops/load/README.md)"
                     % (results, summary.name, stats.name, prom[0].name, prom[1].name))


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="quotas.py",
        description="Propose CPU and memory limits per compose service from a k6 summary and resource peaks.",
        epilog="Rule: memory = peak x 1.5 rounded up to 64 MiB (min 64 MiB); cpus = peak cores x 2 "
               "rounded up to 0.25 (min 0.25). Exit 1 when the load test failed its thresholds.")
    ap.add_argument("--results", metavar="DIR", help="take the newest *-summary.json in DIR and its "
                    "<profile>-docker-stats.jsonl or <profile>-prom-{memory,cpu}.json")
    ap.add_argument("--summary", metavar="FILE", help="k6 handleSummary JSON")
    ap.add_argument("--docker-stats", metavar="FILE", help="docker stats --format '{{json .}}' samples, one a line")
    ap.add_argument("--prom-memory", metavar="FILE", help="Prometheus result: working set bytes per container")
    ap.add_argument("--prom-cpu", metavar="FILE", help="Prometheus result: CPU cores per container")
    ap.add_argument("--project", help="compose project name (default: COMPOSE_PROJECT_NAME or compose.yaml's name)")
    ap.add_argument("--target-rps", type=float, metavar="N", help="expected peak; a run below 90%% of it is flagged")
    ap.add_argument("--memory-headroom", type=float, default=MEMORY_HEADROOM, metavar="F",
                    help="memory limit = peak x F (default %(default)s)")
    ap.add_argument("--cpu-headroom", type=float, default=CPU_HEADROOM, metavar="F",
                    help="cpus = peak cores x F (default %(default)s)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    ap.add_argument("--compose", action="store_true", help="also print compose deploy.resources.limits YAML")
    ap.add_argument("--write-doc", metavar="FILE", help="replace the section between %s and %s" % (BEGIN_MARKER, END_MARKER))
    ap.add_argument("--force", action="store_true", help="write the doc even when the numbers are not trustworthy")
    args = ap.parse_args(argv)

    try:
        if args.memory_headroom < 1 or args.cpu_headroom < 1:
            raise InputError("a headroom factor below 1 would set limits under the measured peak")
        if args.results:
            if args.summary or args.docker_stats or args.prom_memory or args.prom_cpu:
                raise InputError("--results picks the files itself: leave out --summary, --docker-stats and --prom-*")
            summary_path, stats_path, prom = newest_run(args.results)
        else:
            if not args.summary:
                raise InputError("give --summary FILE (or --results DIR)")
            if bool(args.prom_memory) != bool(args.prom_cpu):
                raise InputError("--prom-memory and --prom-cpu go together")
            if bool(args.docker_stats) == bool(args.prom_memory):
                raise InputError("give either --docker-stats FILE or --prom-memory FILE --prom-cpu FILE")
            summary_path, stats_path = args.summary, args.docker_stats
            prom = (args.prom_memory, args.prom_cpu) if args.prom_memory else None
        project = args.project or default_project()
        summary = load_summary(summary_path)
        if stats_path:
            peaks = load_docker_stats(stats_path, project)
            source = "`docker stats` samples in `%s`" % stats_path
        else:
            peaks = load_prometheus(prom[0], prom[1], project)
            source = "Prometheus (cAdvisor) results `%s` and `%s`" % prom
        rows = propose(peaks, args.memory_headroom, args.cpu_headroom)
        problems = trust_problems(summary, args.target_rps)
        report = markdown(summary, source, rows, problems, args.memory_headroom, args.cpu_headroom)
        if args.write_doc:
            if problems and not args.force:
                raise InputError("not writing %s: %s (--force writes anyway)" % (args.write_doc, "; ".join(problems)))
            write_doc(args.write_doc, report)
    except InputError as e:
        print("quotas.py: error: %s" % e, file=sys.stderr)
        return 2

    if args.json:
        json.dump({"summary": summary, "services": rows, "default": default_limits(rows), "trustworthy": not problems, "problems": problems,
                   "rule": {"memory_headroom": args.memory_headroom, "memory_step_mib": MEMORY_STEP // MIB,
                            "memory_min_mib": MEMORY_MIN // MIB, "cpu_headroom": args.cpu_headroom,
                            "cpu_step": CPU_STEP, "cpu_min": CPU_MIN}},
                  sys.stdout, indent=2, sort_keys=True)
        print()
    else:
        sys.stdout.write(report)
        if args.compose:
            sys.stdout.write("\n```yaml\n" + compose_yaml(rows) + "```\n")
        if args.write_doc:
            print("\nupdated %s" % args.write_doc)
    if problems:
        print("quotas.py: warning: limits not trustworthy: %s" % "; ".join(problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
