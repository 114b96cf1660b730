"""Unit tests of quotas.py on the recorded fixtures, with known answers.

Run: python3 -m unittest discover -s ops/load   (or `make check`, which runs them too)
"""

import io
import json
import os
import shutil
import sys
import tempfile
import time
import unittest
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import quotas  # noqa: E402

FIX = HERE / "fixtures"
SUMMARY = str(FIX / "k6-load-summary.json")
FAILED = str(FIX / "k6-failed-summary.json")
STATS = str(FIX / "docker-stats.jsonl")
PROM_MEM = str(FIX / "prometheus-memory.json")
PROM_CPU = str(FIX / "prometheus-cpu.json")
MIB = 1024 * 1024


def run(*argv):
    """(exit status, stdout, stderr) of quotas.main(argv)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = quotas.main(list(argv))
    return rc, out.getvalue(), err.getvalue()


def limits(rows):
    return {r["service"]: (r["containers"], r["peak_cpu"], r["peak_memory_mib"], r["cpus"], r["memory"], r["file"])
            for r in rows}


class ParseTest(unittest.TestCase):
    def test_sizes(self):
        self.assertEqual(quotas.parse_size("0B"), 0)
        self.assertEqual(quotas.parse_size("512KiB"), 512 * 1024)
        self.assertEqual(quotas.parse_size("123.5MiB"), int(123.5 * MIB))
        self.assertEqual(quotas.parse_size("1.5GiB"), 3 * 512 * MIB)
        self.assertEqual(quotas.parse_size("10kB"), 10000)
        self.assertEqual(quotas.parse_size("2MB"), 2000000)
        for bad in ("", "MiB", "12 parsecs", "-1MiB"):
            with self.assertRaises(ValueError, msg=bad):
                quotas.parse_size(bad)

    def test_percent(self):
        self.assertAlmostEqual(quotas.parse_percent("12.34%"), 0.1234)
        self.assertAlmostEqual(quotas.parse_percent("250.00%"), 2.5)
        self.assertEqual(quotas.parse_percent("--"), 0.0)
        with self.assertRaises(ValueError):
            quotas.parse_percent("12.34")

    def test_service_names(self):
        self.assertEqual(quotas.service_of("shop-backend-2", "shop"), "backend")
        self.assertEqual(quotas.service_of("shop-node-exporter-1", "shop"), "node-exporter")
        self.assertEqual(quotas.service_of("shop_db_1", "shop"), "db")
        self.assertIsNone(quotas.service_of("other-redis-1", "shop"))
        self.assertEqual(quotas.service_of("shop-db-1", None), "shop-db")


class RuleTest(unittest.TestCase):
    def test_memory(self):
        # peak x 1.5, rounded up to 64 MiB, at least 64 MiB
        self.assertEqual(quotas.memory_limit(0), 64 * MIB)
        self.assertEqual(quotas.memory_limit(10 * MIB), 64 * MIB)
        self.assertEqual(quotas.memory_limit(128 * MIB), 192 * MIB)   # exactly 192: no extra step
        self.assertEqual(quotas.memory_limit(129 * MIB), 256 * MIB)
        self.assertEqual(quotas.memory_limit(400 * MIB), 640 * MIB)

    def test_cpu(self):
        # peak cores x 2, rounded up to 0.25, at least 0.25
        self.assertEqual(quotas.cpu_limit(0), 0.25)
        self.assertEqual(quotas.cpu_limit(0.125), 0.25)              # exactly 0.25: no extra step
        self.assertEqual(quotas.cpu_limit(0.13), 0.5)
        self.assertEqual(quotas.cpu_limit(0.618), 1.25)
        self.assertEqual(quotas.cpu_limit(1.5), 3.0)

    def test_formats(self):
        self.assertEqual([quotas.fmt_cpus(c) for c in (0.25, 0.5, 0.75, 1.0, 1.25, 2.0)],
                         ["0.25", "0.5", "0.75", "1.0", "1.25", "2.0"])
        self.assertEqual(quotas.fmt_mem(320 * MIB), "320m")


class SummaryTest(unittest.TestCase):
    def test_passed(self):
        s = quotas.load_summary(SUMMARY)
        self.assertEqual(s["profile"], "load")
        self.assertEqual(s["requests"], 34512)
        self.assertAlmostEqual(s["rps"], 44.22278)
        self.assertAlmostEqual(s["p95_ms"], 184.23)
        self.assertAlmostEqual(s["failed_rate"], 0.000173853)
        self.assertEqual(s["failed_thresholds"], [])
        self.assertEqual(s["duration_s"], 780.4)
        self.assertEqual(s["hold"]["rps"], 49.94)
        self.assertEqual(s["hold"]["requests"], 29964)
        # the hold reached the peak although the whole run, ramps included, averaged 44 req/s
        self.assertEqual(quotas.trust_problems(s, 50), [])

    def test_failed(self):
        s = quotas.load_summary(FAILED)
        self.assertIsNone(s["profile"])
        self.assertIsNone(s["hold"])
        self.assertEqual(s["failed_thresholds"],
                         ["checks rate>0.99", "http_req_duration p(95)<300", "http_req_duration{phase:hold} p(95)<300",
                          "http_req_failed rate<0.001", "http_req_failed{phase:hold} rate<0.001"])


class DockerStatsTest(unittest.TestCase):
    def test_known_answers(self):
        rows = quotas.propose(quotas.load_docker_stats(STATS, "shop"))
        self.assertEqual(limits(rows), {
            "backend": (2, 0.618, 86.3, "1.25", "192m", "compose.prod.yaml"),
            "db": (1, 0.2305, 201.3, "0.5", "320m", "compose.prod.yaml"),
            "frontend": (1, 0.0102, 6.9, "0.25", "64m", "compose.prod.yaml"),
            "proxy": (1, 0.0987, 38.5, "0.25", "64m", "compose.prod.yaml"),
        })
        self.assertEqual(quotas.default_limits(rows), {"cpus": "1.25", "memory": "320m"})

    def test_other_project_only(self):
        with self.assertRaisesRegex(quotas.InputError, "no container of compose project 'nope'"):
            quotas.load_docker_stats(STATS, "nope")


class PrometheusTest(unittest.TestCase):
    def test_known_answers(self):
        rows = quotas.propose(quotas.load_prometheus(PROM_MEM, PROM_CPU, "shop"))
        self.assertEqual(limits(rows), {
            "backend": (2, 0.37, 100.0, "0.75", "192m", "compose.prod.yaml"),
            "db": (1, 0.125, 256.0, "0.25", "384m", "compose.prod.yaml"),
            "frontend": (1, 0.01, 8.0, "0.25", "64m", "compose.prod.yaml"),
            "prometheus": (1, 0.05, 400.0, "0.25", "640m", "compose.monitoring.yaml"),
            "proxy": (1, 0.3, 48.0, "0.75", "128m", "compose.prod.yaml"),
        })


class MainTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.tmp)

    def path(self, name, text=None):
        p = os.path.join(self.tmp, name)
        if text is not None:
            with open(p, "w", encoding="utf-8") as f:
                f.write(text)
        return p

    def test_report(self):
        rc, out, err = run("--summary", SUMMARY, "--docker-stats", STATS, "--project", "shop",
                           "--target-rps", "50", "--compose")
        self.assertEqual(rc, 0, err)
        self.assertIn("| backend | 2 | 0.618 | 86.3 MiB | 1.25 | 192m | compose.prod.yaml |", out)
        self.assertIn("Thresholds: passed.", out)
        self.assertIn("Hold at the peak: 29964 requests in 600 s, 49.9 req/s, p95 196.4 ms, failed 0.01%.", out)
        self.assertIn('  backend:\n    deploy:\n      resources:\n        limits:\n          cpus: "1.25"\n          memory: 192m\n', out)

    def test_json(self):
        rc, out, _ = run("--summary", SUMMARY, "--prom-memory", PROM_MEM, "--prom-cpu", PROM_CPU,
                         "--project", "shop", "--json")
        self.assertEqual(rc, 0)
        data = json.loads(out)
        self.assertTrue(data["trustworthy"])
        self.assertEqual({s["service"]: s["memory"] for s in data["services"]},
                         {"backend": "192m", "db": "384m", "frontend": "64m", "prometheus": "640m", "proxy": "128m"})

    def test_failed_thresholds(self):
        doc = self.path("capacity.md", "a\n%s\nOLD-CONTENT\n%s\nb\n" % (quotas.BEGIN_MARKER, quotas.END_MARKER))
        rc, out, err = run("--summary", FAILED, "--docker-stats", STATS, "--project", "shop")
        self.assertEqual(rc, 1)
        self.assertIn("**Not trustworthy**", out)
        self.assertIn("limits not trustworthy", err)
        rc, _, err = run("--summary", FAILED, "--docker-stats", STATS, "--project", "shop", "--write-doc", doc)
        self.assertEqual(rc, 2)
        self.assertIn("not writing", err)
        self.assertIn("OLD-CONTENT", Path(doc).read_text())

    def test_target_rps_not_reached(self):
        rc, out, err = run("--summary", SUMMARY, "--docker-stats", STATS, "--project", "shop", "--target-rps", "100")
        self.assertEqual(rc, 1)
        self.assertIn("it reached 49.9 req/s, less than 90% of the expected peak of 100 req/s", err)

    def test_smoke_profile(self):
        data = json.loads(Path(SUMMARY).read_text())
        data["profile"] = {"name": "smoke"}
        smoke = self.path("smoke-summary.json", json.dumps(data))
        rc, _, err = run("--summary", smoke, "--docker-stats", STATS, "--project", "shop")
        self.assertEqual(rc, 1)
        self.assertIn("the smoke profile does not load the application", err)

    def test_write_doc(self):
        doc = self.path("capacity.md", "# Capacity\n%s\nOLD-CONTENT\n%s\ntail\n" % (quotas.BEGIN_MARKER, quotas.END_MARKER))
        rc, _, err = run("--summary", SUMMARY, "--docker-stats", STATS, "--project", "shop", "--write-doc", doc)
        self.assertEqual(rc, 0, err)
        text = Path(doc).read_text()
        self.assertTrue(text.startswith("# Capacity\n%s\nLoad test: " % quotas.BEGIN_MARKER), text)
        self.assertNotIn("OLD-CONTENT", text)
        self.assertIn("| db | 1 | 0.231 | 201.3 MiB | 0.5 | 320m | compose.prod.yaml |", text)
        self.assertTrue(text.endswith("%s\ntail\n" % quotas.END_MARKER))
        # idempotent
        run("--summary", SUMMARY, "--docker-stats", STATS, "--project", "shop", "--write-doc", doc)
        self.assertEqual(Path(doc).read_text(), text)

    def test_write_doc_without_markers(self):
        doc = self.path("capacity.md", "# Capacity\n")
        rc, _, err = run("--summary", SUMMARY, "--docker-stats", STATS, "--project", "shop", "--write-doc", doc)
        self.assertEqual(rc, 2)
        self.assertIn("markers", err)

    def test_results_dir_picks_newest(self):
        res = os.path.join(self.tmp, "results")
        os.mkdir(res)
        shutil.copy(FAILED, os.path.join(res, "smoke-summary.json"))
        shutil.copy(STATS, os.path.join(res, "smoke-docker-stats.jsonl"))
        old = time.time() - 60
        os.utime(os.path.join(res, "smoke-summary.json"), (old, old))
        shutil.copy(SUMMARY, os.path.join(res, "load-summary.json"))
        rc, out, err = run("--results", res, "--project", "shop")
        self.assertEqual(rc, 2)
        self.assertIn("no resource samples for load-summary.json", err)
        shutil.copy(PROM_MEM, os.path.join(res, "load-prom-memory.json"))
        shutil.copy(PROM_CPU, os.path.join(res, "load-prom-cpu.json"))
        rc, out, err = run("--results", res, "--project", "shop")
        self.assertEqual(rc, 0, err)
        self.assertIn("load-summary.json", out)
        self.assertIn("| prometheus | 1 | 0.050 | 400.0 MiB | 0.25 | 640m | compose.monitoring.yaml |", out)

    def test_bad_input(self):
        cases = [
            (["--summary", self.path("missing.json"), "--docker-stats", STATS], "missing.json: no such file"),
            (["--summary", self.path("bad.json", "{not json"), "--docker-stats", STATS], "bad.json: not JSON"),
            (["--summary", self.path("list.json", "[1, 2]"), "--docker-stats", STATS], 'no "metrics" object'),
            (["--summary", self.path("shape.json", '{"metrics": {"http_reqs": {"count": 3}}}'), "--docker-stats", STATS],
             "metrics.http_reqs.values is missing"),
            (["--summary", SUMMARY, "--docker-stats", self.path("empty.jsonl", "\n")], "no samples"),
            (["--summary", SUMMARY, "--docker-stats", self.path("junk.jsonl", "hello\n")], "junk.jsonl:1: not a JSON line"),
            (["--summary", SUMMARY, "--docker-stats", self.path("fields.jsonl", '{"Name": "shop-db-1"}\n')],
             "fields.jsonl:1: a docker stats sample needs Name, CPUPerc and MemUsage"),
            (["--summary", SUMMARY, "--docker-stats",
              self.path("unit.jsonl", '{"Name": "shop-db-1", "CPUPerc": "1%", "MemUsage": "3 parsecs / 1GiB"}\n')],
             "unit.jsonl:1: unknown size unit"),
            (["--summary", SUMMARY, "--prom-memory", PROM_MEM], "--prom-memory and --prom-cpu go together"),
            (["--summary", SUMMARY], "either --docker-stats FILE or --prom-memory FILE --prom-cpu FILE"),
            (["--docker-stats", STATS], "give --summary FILE"),
            (["--summary", SUMMARY, "--prom-memory", self.path("err.json", '{"status": "error", "error": "bad query"}'),
              "--prom-cpu", PROM_CPU], "the Prometheus query failed: bad query"),
            (["--summary", SUMMARY, "--prom-memory", self.path("scalar.json", '{"status": "success", "data": {"resultType": "scalar", "result": [1, "2"]}}'),
              "--prom-cpu", PROM_CPU], "resultType 'scalar'"),
            (["--summary", SUMMARY, "--docker-stats", STATS, "--memory-headroom", "0.9"], "headroom factor below 1"),
        ]
        for argv, want in cases:
            rc, out, err = run(*(argv + ["--project", "shop"]))
            self.assertEqual(rc, 2, (argv, out, err))
            self.assertIn("quotas.py: error: ", err)
            self.assertIn(want, err, argv)


if __name__ == "__main__":
    unittest.main()
