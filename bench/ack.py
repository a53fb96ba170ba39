"""Ack throughput of a signed `/ticket list`, the bot next to the shared reference app, with wrk.

Run from the repository root (wrk must be installed; PostgreSQL reachable):

    python -m bench.ack                       # 3 rounds of wrk -t1 -c16 -d8s against each
    python -m bench.ack --rounds 5 --duration 10
    python -m bench.ack --reference /path/to/bare_bolt.py

It creates a scratch PostgreSQL database (dropped at the end) and starts, each in its own
process: the stand-in Slack (devslack) with the load benchmark's workspace of 40 customers, the
bot exactly as `python -m bot serve` runs it (BotServer with its outbox worker, logging at INFO,
bench.load's `_bot` role), and the reference: `bare_bolt.py` from the shared folder beside the
repository (../shared/bench/bare_bolt.py, or --reference / TICKETBOT_REFERENCE_APP), a bolt
AsyncApp that only acks, served unmodified by uvicorn (`uvicorn bare_bolt:api --app-dir ...`).
When that file is absent (a clone without the shared folder) the run says so and measures
bench.load's bare app (bolt's aiohttp adapter) instead, labelled as such; `--reference none`
measures the bot alone.

Each round runs `wrk -t1 -c16 -d8s --latency` against the reference and against the bot, in
alternating order (reference first in odd rounds). The requests are signed right before each
wrk run (Slack's signature covers a timestamp that must be within five minutes): a file of
distinct `/ticket list` bodies, each with its own trigger_id (the bot drops a repeated
trigger as Slack's retry) and a response_url that points back at this process, which counts
the bot's answers; a small Lua script feeds them to wrk. Between two phases the bench waits
until the bot has answered everything it acked, so that no phase pays for the one before.

Printed per round and as median [min-max] over rounds: acks per second, p50/p99 ack latency,
errors (non-2xx, timeouts, socket errors), answers through the response_url per second (bot),
and the ratio bot/reference of each round. Targets (issue 16): ratio >= 0.6, bot p99 <= 50 ms.
TICKETBOT_LOAD_PROFILE=<file> makes the bot write a cProfile of itself there when it stops.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from bench.load import (
    CUSTOMERS,
    DEFAULT_PG,
    SIGNING_SECRET,
    Process,
    create_database,
    drop_database,
    spawn,
)
from devslack.requests import SlackRequestSigner, make_trigger_id, slash_command_body

REPO = Path(__file__).resolve().parent.parent
DEFAULT_REFERENCE = REPO.parent / "shared" / "bench" / "bare_bolt.py"
REFERENCE_TOKEN = "xoxb-bare"  # the token bare_bolt.py gives its client
RATIO_TARGET = 0.6
ERROR_KINDS = ("connect", "read", "write", "status", "timeout")  # wrk's
P99_TARGET_MS = 50.0

# wrk: every request is one pre-signed line of the file named by the script's argument.
LUA = r"""
local requests = {}
local next_index = 0

init = function(args)
  for line in io.lines(args[1]) do
    local ts, sig, body = line:match("^([^\t]*)\t([^\t]*)\t(.*)$")
    requests[#requests + 1] = wrk.format("POST", "/slack/events", {
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["X-Slack-Request-Timestamp"] = ts,
      ["X-Slack-Signature"] = sig,
    }, body)
  end
end

request = function()
  next_index = next_index % #requests + 1
  return requests[next_index]
end

done = function(summary, latency, requests)
  io.write(string.format(
    'WRK {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %f}\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max, latency.mean))
end
"""


@dataclass
class Phase:
    target: str  # "reference" | "bot"
    round: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    load: str
    answered: int | None = None
    answered_per_s: float | None = None
    refusals: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


class Answers:
    """Receives the bot's response_url posts (`/r/<key>`) and counts them."""

    def __init__(self) -> None:
        self.url = ""
        self.count = 0
        self.refusals = 0
        self.last_at = 0.0
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/r/{key}", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = next(a for a in self._runner.addresses if isinstance(a, tuple))[1]
        self.url = f"http://127.0.0.1:{port}/r/"

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.count += 1
        if b'"text": "0 tickets"' not in body and b'"text":"0 tickets"' not in body:
            self.refusals += 1  # every customer has no ticket: any other answer is a refusal
        self.last_at = time.perf_counter()
        return web.Response(text="ok")

    async def settle(self, *, quiet: float = 2.0, limit: float = 120.0) -> None:
        """Return once no answer has arrived for `quiet` seconds."""
        started = time.perf_counter()
        seen = -1
        while time.perf_counter() - started < limit:
            if self.count == seen:
                return
            seen = self.count
            await asyncio.sleep(quiet)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def write_requests(path: Path, count: int, answers_url: str, tag: str) -> None:
    """`count` distinct `/ticket list` commands, signed now: `timestamp TAB signature TAB body`."""
    signer = SlackRequestSigner(SIGNING_SECRET)
    with path.open("w") as out:
        for n in range(count):
            user = CUSTOMERS[n % len(CUSTOMERS)]
            body = slash_command_body(
                text="list",
                user_id=user,
                channel_id=f"D{user[1:]}",
                trigger_id=make_trigger_id(),
                response_url=f"{answers_url}{tag}{n}",
            ).body
            headers = signer.headers(body)
            out.write(
                f"{headers['X-Slack-Request-Timestamp']}\t{headers['X-Slack-Signature']}\t{body}\n"
            )


async def run_wrk(
    wrk: str, url: str, script: Path, requests_file: Path, args: argparse.Namespace
) -> dict[str, Any]:
    command = [
        wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration:g}s",
        "--timeout", "10s", "--latency", "-s", str(script), url + "/slack/events",
        "--", str(requests_file),
    ]  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await process.communicate()
    text = out.decode()
    for line in text.splitlines():
        if line.startswith("WRK "):
            return dict(json.loads(line[4:]))
    raise SystemExit(f"wrk printed no summary:\n{text}")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of processes so far (clock ticks from /proc/<pid>/stat)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError), open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def machine_cpu() -> tuple[float, float]:
    """(busy, stolen) CPU seconds of the whole machine so far, from /proc/stat."""
    with open("/proc/stat") as stat:
        ticks = [int(x) for x in stat.readline().split()[1:]]
    idle = ticks[3] + ticks[4]
    steal = ticks[7] if len(ticks) > 7 else 0
    busy = sum(ticks[:8]) - idle - steal
    hz = os.sysconf("SC_CLK_TCK")
    return busy / hz, steal / hz


def rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def measure(
    targets: dict[str, str], args: argparse.Namespace, wrk: str, pids: dict[str, int]
) -> list[Phase]:
    bot_pid = pids.get("bot")
    answers = Answers()
    await answers.start()
    workdir = Path(tempfile.mkdtemp(prefix="ticketbot-ack-"))
    script = workdir / "signed.lua"
    script.write_text(LUA)
    # Enough distinct requests that none repeats within a phase (a repeat would be dropped
    # by the bot as Slack's retry, and cost it less).
    count = int(args.duration * args.max_rate) + 1000
    phases: list[Phase] = []
    try:
        for name, url in targets.items():
            await probe(name, url, answers.url)
        # Warm-up, not counted: connections, the customers provisioned, imports, caches.
        for name, url in targets.items():
            requests_file = workdir / f"warmup-{name}.tsv"
            write_requests(requests_file, count, answers.url, f"w{name[0]}")
            warm = argparse.Namespace(**{**vars(args), "duration": args.warmup})
            await run_wrk(wrk, url, script, requests_file, warm)
            await answers.settle()
        if bot_pid is not None:
            print(f"bot RSS after the warm-up: {rss_mb(bot_pid):.1f} MB", flush=True)
        names = list(targets)
        for number in range(1, args.rounds + 1):
            order = names if number % 2 else list(reversed(names))
            for name in order:
                requests_file = workdir / f"{name}-{number}.tsv"
                tag = f"{name[0]}{number}-"
                write_requests(requests_file, count, answers.url, tag)
                before = answers.count
                refusals_before = answers.refusals
                load_before = os.getloadavg()[0]
                cpu_before = {
                    "target": cpu_seconds([pids[name]]),
                    "machine": machine_cpu()[0],
                    "steal": machine_cpu()[1],
                }
                started = time.perf_counter()
                spy = None
                if name == "bot" and args.pyspy and bot_pid is not None:
                    spy = await asyncio.create_subprocess_exec(
                        args.pyspy, "record", "--pid", str(bot_pid), "--format", "raw",
                        "--rate", "250", "--duration", str(int(args.duration)), "--nonblocking",
                        "--output", f"{args.pyspy_output}.{number}.txt",
                        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
                    )  # fmt: skip
                figures = await run_wrk(wrk, targets[name], script, requests_file, args)
                if spy is not None:
                    await spy.wait()
                wall = time.perf_counter() - started
                cpu = {
                    "target": cpu_seconds([pids[name]]) - cpu_before["target"],
                    "machine": machine_cpu()[0] - cpu_before["machine"],
                    "steal": machine_cpu()[1] - cpu_before["steal"],
                }
                phase = Phase(
                    target=name,
                    round=number,
                    requests=figures["requests"],
                    seconds=figures["duration_us"] / 1e6,
                    p50_ms=figures["p50_us"] / 1000,
                    p99_ms=figures["p99_us"] / 1000,
                    errors=sum(figures[k] for k in ERROR_KINDS),
                    load=f"{load_before:.2f}-{os.getloadavg()[0]:.2f}",
                    extra={
                        "max_ms": figures["max_us"] / 1000,
                        "cpu": {k: round(v / wall, 2) for k, v in cpu.items()},
                    },
                )
                if name == "bot":
                    await answers.settle()
                    phase.answered = answers.count - before
                    phase.refusals = answers.refusals - refusals_before
                    last = max(answers.last_at - started, phase.seconds)
                    phase.answered_per_s = phase.answered / last if last else 0.0
                    if bot_pid is not None:
                        phase.extra["rss_mb"] = rss_mb(bot_pid)
                phases.append(phase)
                print(describe(phase), flush=True)
                requests_file.unlink()
                await asyncio.sleep(1.0)
    finally:
        await answers.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return phases


async def probe(name: str, url: str, answers_url: str) -> None:
    """One signed `/ticket list` first: each target must ack it (the reference with its
    `ok list`; a reference whose authorisation fails answers 200 with an error text instead)."""
    import aiohttp

    body = slash_command_body(
        text="list", user_id=CUSTOMERS[0], channel_id="D0PROBE", response_url=answers_url + "p"
    ).body
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        **SlackRequestSigner(SIGNING_SECRET).headers(body),
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + "/slack/events", data=body, headers=headers) as response,
    ):
        text = await response.text()
    print(f"probe {name}: HTTP {response.status} {text[:80]!r}", flush=True)
    if response.status != 200 or (name == "reference" and "ok list" not in text):
        raise SystemExit(f"{name} did not ack a signed /ticket list; see its log")


def describe(phase: Phase) -> str:
    text = (
        f"round {phase.round} {phase.target:9} {phase.rate:8.1f} acks/s  "
        f"p50 {phase.p50_ms:6.1f} ms  p99 {phase.p99_ms:6.1f} ms  "
        f"errors {phase.errors}  load {phase.load}"
    )
    if phase.answered is not None:
        text += (
            f"  answered {phase.answered} ({phase.answered_per_s:.1f}/s, {phase.refusals} refusals)"
        )
    cpu = phase.extra.get("cpu")
    if cpu:
        text += (
            f"  CPU (cores) {phase.target} {cpu['target']:.2f} machine {cpu['machine']:.2f} "
            f"stolen {cpu['steal']:.2f}"
        )
    if "rss_mb" in phase.extra:
        text += f"  RSS {phase.extra['rss_mb']:.1f} MB"
    return text


def spread(values: list[float], fmt: str = "{:.1f}") -> str:
    if not values:
        return "-"
    median = statistics.median(values)
    return f"{fmt.format(median)} [{fmt.format(min(values))}-{fmt.format(max(values))}]"


def report(phases: list[Phase], reference_label: str | None) -> bool:
    print(f"\nwrk -t1 -c16, {len({p.round for p in phases})} rounds; median [min-max]:")
    bot = [p for p in phases if p.target == "bot"]
    ref = [p for p in phases if p.target == "reference"]
    for name, rows in (("reference", ref), ("bot", bot)):
        if not rows:
            continue
        label = reference_label if name == "reference" else "ticketbot (python -m bot serve)"
        print(
            f"  {name:9} acks/s {spread([p.rate for p in rows])}  "
            f"p50 {spread([p.p50_ms for p in rows])} ms  p99 {spread([p.p99_ms for p in rows])} ms"
            f"  errors {sum(p.errors for p in rows)}   ({label})"
        )
    if bot and bot[0].answered_per_s is not None:
        print(f"  bot answered through the response_url: "
              f"{spread([p.answered_per_s or 0.0 for p in bot])}/s, "
              f"refusals {sum(p.refusals for p in bot)}")  # fmt: skip
    ok = True
    if ref:
        by_round = {p.round: p for p in ref}
        ratios = [p.rate / by_round[p.round].rate for p in bot if by_round[p.round].rate]
        print(f"  ratio bot/reference per round: {', '.join(f'{r:.2f}' for r in ratios)}")
        ratio = statistics.median(ratios)
        ok &= verdict(f"ratio {ratio:.2f}x (median; target >= {RATIO_TARGET:g}x)",
                      ratio >= RATIO_TARGET)  # fmt: skip
    p99 = statistics.median([p.p99_ms for p in bot])
    ok &= verdict(f"bot p99 {p99:.1f} ms (median; target <= {P99_TARGET_MS:g} ms)",
                  p99 <= P99_TARGET_MS)  # fmt: skip
    errors = sum(p.errors + p.refusals for p in bot)
    missing = sum(p.requests - (p.answered or 0) for p in bot)
    ok &= verdict(f"bot errors and refusals: {errors} (target 0)", errors == 0)
    print(f"INFO  acked but not answered: {missing} (requests in flight when wrk stops are "
          "acked by the bot but not counted by wrk: this may be negative)")  # fmt: skip
    return ok


def verdict(text: str, ok: bool) -> bool:
    print(f"{'PASS' if ok else 'FAIL'}  {text}")
    return ok


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_reference(path: Path, api_url: str, log_dir: str) -> Process:
    """uvicorn serving the reference app unmodified from its own folder."""
    port = free_port()
    log = open(os.path.join(log_dir, "reference.log"), "w")  # noqa: SIM115 (kept by the child)
    env = {**os.environ, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": api_url}
    env.pop("SLACK_BOT_TOKEN", None)
    popen = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", f"{path.stem}:api", "--app-dir", str(path.parent),
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        stdout=log, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            break
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return Process("reference", popen, url)  # type: ignore[arg-type]
        time.sleep(0.2)
    popen.kill()
    raise SystemExit(f"the reference app did not start; see {log.name}")


def find_reference(choice: str | None) -> Path | None:
    if choice == "none":
        return None
    candidate = Path(choice or os.environ.get("TICKETBOT_REFERENCE_APP") or DEFAULT_REFERENCE)
    return candidate if candidate.is_file() else None


def run(args: argparse.Namespace) -> int:
    wrk = shutil.which("wrk")
    if wrk is None:
        print("bench.ack needs wrk (apt-get install wrk); not found on PATH", file=sys.stderr)
        return 2
    reference = find_reference(args.reference)
    if reference is None and args.reference != "none":
        wanted = args.reference or os.environ.get("TICKETBOT_REFERENCE_APP") or DEFAULT_REFERENCE
        print(f"NOTE  the reference app {wanted} is not there (a clone without the shared "
              "folder beside it): measuring bench.load's bare bolt app (aiohttp adapter) in its "
              "place; its figures are NOT the reference's.", flush=True)  # fmt: skip
    database_url = asyncio.run(create_database(args.pg_server))
    log_dir = tempfile.mkdtemp(prefix="ticketbot-ack-logs-")
    processes: list[Process] = []
    try:
        fake = spawn("fake-slack", ["_fake"], log_dir)
        processes.append(fake)
        bot = spawn("bot", ["_bot", database_url, fake.url, "--log-level", args.log_level], log_dir)
        processes.append(bot)
        targets: dict[str, str] = {}
        label: str | None = None
        if args.reference != "none":
            if reference is not None:
                # The reference's token (its file's) must pass auth.test, or bolt asks Slack
                # again on every request and refuses it: a stand-in Slack of its own.
                ref_fake = spawn("reference-slack", ["_fake", REFERENCE_TOKEN], log_dir)
                processes.append(ref_fake)
                ref = start_reference(reference, ref_fake.url, log_dir)
                label = f"{reference} on uvicorn"
            else:
                ref = spawn("bare", ["_bare", fake.url], log_dir)
                label = "FALLBACK: bench.load's bare app, aiohttp adapter"
            processes.append(ref)
            targets["reference"] = ref.url
        targets["bot"] = bot.url
        pids = {"bot": bot.popen.pid}
        if "reference" in targets:
            pids["reference"] = processes[-1].popen.pid
        print(f"bot {bot.url}  reference {targets.get('reference', '-')}  logs {log_dir}")
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"bot RSS idle: {rss_mb(bot.popen.pid):.1f} MB; {os.cpu_count()} CPUs, "
              f"load average {load}", flush=True)  # fmt: skip
        phases = asyncio.run(measure(targets, args, wrk, pids))
        ok = report(phases, label)
        if args.json:
            print(json.dumps([{**vars(p), "rate": round(p.rate, 1)} for p in phases]))
        return 0 if ok else 1
    finally:
        for process in reversed(processes):
            process.stop()
        asyncio.run(drop_database(database_url))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ack", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8, help="seconds of wrk per phase")
    parser.add_argument("--warmup", type=float, default=3, help="uncounted seconds per target")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-rate", type=float, default=4000,
                        help="requests/s to sign for (distinct bodies per phase)")  # fmt: skip
    parser.add_argument("--reference", help="the reference app's file, or 'none'")
    parser.add_argument("--pg-server", default=DEFAULT_PG)
    parser.add_argument("--log-level", default="INFO", help="the bot's log level")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--pyspy", help="path of py-spy: sample the bot during its phases")
    parser.add_argument("--pyspy-output", default="/tmp/ticketbot-ack-pyspy",
                        help="py-spy's collapsed stacks go to <this>.<round>.txt")  # fmt: skip
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
