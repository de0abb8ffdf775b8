"""Load benchmark for the introducer (a script, not a test; loopback only).

    python -m benchmarks.signaling_load [--sockets 1000] [--rates 5000,10000,15000,20000]
                                        [--duration 8] [--workers 2] [--nice -10]
                                        [--attacks all|ping_flood,...] [--attack-rate 3000]
                                        [--attack-rounds 2]

Starts `python -m signaling` as a subprocess on 127.0.0.1 (so its RSS and CPU
can be read from /proc), opens N WebSockets from separate client processes
(from many loopback addresses, a few sockets each, as real windows would
come) and joins them in clusters of 3. Then, for each offered rate, the
clients send signals open loop (spread evenly over all sockets, each to the
next node of its cluster) and count what the peers receive. Prints per step:
relayed messages/s, p50/p99 relay latency (send -> receipt at the peer, one
monotonic clock), sockets held, server RSS and CPU; writes
benchmarks/results/signaling_load.json.

--attacks: then the attack mixes. The honest clusters offer --attack-rate
signals/s while an attacker process (its own loopback addresses) runs one
DoS of issue 11 at a time: ping_flood (WebSocket pings, 30,000/s in all),
json_flood (NaN, garbage, bad joins, 30,000/s), slow_reader (a member in 5
honest clusters that reads nothing, stuffed with 64 KiB signals by an
accomplice, while the honest members send it every 10th signal), churn
(join/leave with new ids in honest clusters), idle_sockets (as many
never-joining, ping-answering sockets as allowed), squat (as many clusters as
allowed). The attacker reconnects whenever it is cut. Each round measures a
baseline ("none") then every attack; the medians over rounds are printed and
saved, with what the attacker got (close codes, refused upgrades).

Client load shares the machine's cores with the server (and so does the
attacker: on a real network it would not). On a machine busy with other
work, `--nice -10` (root) gives the benchmark's own processes priority; the
load average and the nice value are recorded with the results. Bounded:
every phase has a timeout and the whole run stops by itself.
"""

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path


REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "signaling_load.json"
CLUSTER_SIZE = 3
HARD_TIMEOUT_S = 300


# -- client worker (own process) ----------------------------------------------
#
# The load generator speaks WebSocket itself on an asyncio.Protocol: frames are
# parsed in data_received and sent with transport.write, with no task switch per
# message. A library client costs more CPU per message than the server does,
# so on this 2-core machine it would measure the clients, not the server.
# (Client frames use an all-zero mask key: valid framing, no XOR work; the
# server unmasks whatever key it gets.)

PACE_TICK_S = 0.005
ZERO_MASK = b"\x00\x00\x00\x00"


def client_frame(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        return bytes((0x80 | opcode, 0x80 | n)) + ZERO_MASK + payload
    if n < 65536:
        return bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big") + ZERO_MASK + payload
    return bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big") + ZERO_MASK + payload


def pop_frame(buf: bytearray) -> tuple[int, bytes] | None:
    """Take one whole (unmasked, server-sent) frame off the front of `buf`."""
    if len(buf) < 2:
        return None
    n, pos = buf[1] & 0x7F, 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, pos = int.from_bytes(buf[2:4], "big"), 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n, pos = int.from_bytes(buf[2:10], "big"), 10
    if len(buf) < pos + n:
        return None
    frame = buf[0] & 0x0F, bytes(buf[pos:pos + n])
    del buf[:pos + n]
    return frame


class RawClient(asyncio.Protocol):
    """A WebSocket client in a few lines: upgrade, answer pings, hand text
    frames to on_text, close on a close frame (on_close gets its code)."""

    def __init__(self, port: int):
        self.port = port
        self.buf = bytearray()
        self.upgraded = asyncio.get_running_loop().create_future()
        self.transport = None
        self.closed = False

    def connection_made(self, transport):
        self.transport = transport
        transport.write((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                         "Sec-WebSocket-Version: 13\r\n\r\n").encode())

    def connection_lost(self, exc):
        self.closed = True
        if not self.upgraded.done():
            self.upgraded.set_exception(ConnectionError("closed"))

    def send(self, opcode: int, payload: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(client_frame(opcode, payload))

    def send_text(self, text: str) -> None:
        self.send(0x1, text.encode())

    def on_refused(self, status: str) -> None:
        pass

    def on_close(self, code: str) -> None:
        pass

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.upgraded.done():
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.on_refused(bytes(buf[9:12]).decode("latin-1"))
                self.upgraded.set_exception(ConnectionError(bytes(buf[:80]).decode("latin-1")))
                self.transport.close()
                return
            del buf[:end + 4]
            self.upgraded.set_result(None)
        while (frame := pop_frame(buf)) is not None:
            opcode, payload = frame
            if opcode == 0x1:
                self.on_text(payload)
            elif opcode == 0x9:
                self.send(0xA, payload)
            elif opcode == 0x8:
                self.on_close(str(int.from_bytes(payload[:2], "big")) if len(payload) >= 2 else "none")
                self.transport.close()
                return


class LoadClient(RawClient):
    """An honest socket: joins when the server's hello comes (protocol v2),
    counts relayed signals and their latency (the sender stamped its
    monotonic ns), notes welcome/presence/errors."""

    def __init__(self, port: int, stats: dict, latencies: list, join: str | None = None):
        super().__init__(port)
        loop = asyncio.get_running_loop()
        self.stats = stats
        self.latencies = latencies
        self.join = join  # the join frame to send on hello
        self.welcomed = loop.create_future()
        self.full = loop.create_future()  # presence shows the whole cluster

    def connection_lost(self, exc):
        super().connection_lost(exc)
        for fut in (self.welcomed, self.full):
            if not fut.done():
                fut.set_exception(ConnectionError("closed"))

    def on_text(self, payload: bytes) -> None:
        stats = self.stats
        if payload.startswith(b'{"type":"signal"'):
            # Hot path, no json: the server sends {...,"data":{"t":NS}}.
            if stats["measuring"]:
                stats["count"] += 1
                self.latencies.append(time.monotonic_ns() - int(payload[payload.rindex(b":") + 1:-2]))
            return
        frame = json.loads(payload)
        kind = frame["type"]
        if kind == "hello":
            if self.join is not None:
                self.send_text(self.join)
        elif kind == "welcome":
            self.welcomed.set_result(frame)
        elif kind == "presence":
            if len(frame["nodes"]) >= CLUSTER_SIZE and not self.full.done():
                self.full.set_result(None)
        elif kind == "error" and frame.get("code") == "unknown_target" and stats["unknown_ok"]:
            stats["unknown_target"] += 1  # a peer the attacker makes come and go
        elif kind == "error" and not stats["closing"]:
            stats["errors"] += 1
            if stats["errors"] <= 3:
                print("error frame:", frame, file=sys.stderr)


def honest_source(c: int) -> str:
    """Honest clusters come from many addresses (a few sockets each), as real
    windows would, so per-address limits concern only the attackers."""
    return f"127.0.{1 + c // 250}.{1 + c % 250}"


def cluster_name(c: int) -> str:
    return f"load{c}"


async def _worker_main(port: int, first_cluster: int, clusters: int, conn) -> None:
    loop = asyncio.get_running_loop()
    stats = {"measuring": False, "closing": False, "count": 0, "errors": 0,
             "unknown_ok": False, "unknown_target": 0}
    latencies: list[int] = []
    clients: dict[tuple[int, int], LoadClient] = {}
    gate = asyncio.Semaphore(64)  # connects in flight, to spare the accept queue

    async def open_and_join(c: int, n: int) -> None:
        join = json.dumps({"type": "join", "v": 2, "cluster": cluster_name(c), "node": str(n),
                           "kind": "member"})
        async with gate:
            _, client = await loop.create_connection(
                lambda: LoadClient(port, stats, latencies, join), "127.0.0.1", port,
                local_addr=(honest_source(c), 0))
            await asyncio.wait_for(client.upgraded, 30)
            await asyncio.wait_for(client.welcomed, 30)
            clients[(c, n)] = client

    async def offer_load(rate: float, seconds: float, also_to: str | None, also_clusters: int) -> int:
        """Open loop: `rate` signals/s spread evenly over this worker's sockets,
        each to the next node of its cluster, in small ticks. With `also_to`,
        the sockets of the first `also_clusters` clusters send every 10th
        signal to that node instead (one the attacker keeps in those
        clusters), as a transport offers to every peer it sees."""
        order = [(client, str((key[1] + 1) % CLUSTER_SIZE),
                  also_to is not None and key[0] < also_clusters)
                 for key, client in sorted(clients.items())]
        sent, i, t0 = 0, 0, time.monotonic()
        while (elapsed := time.monotonic() - t0) < seconds:
            due = int(elapsed * rate) - sent
            for _ in range(due):
                client, to, also = order[i % len(order)]
                if also and i % 10 == 0:
                    to = also_to
                i += 1
                client.send_text('{"type":"signal","to":"%s","data":{"t":%d}}' % (to, time.monotonic_ns()))
            sent += max(due, 0)
            await asyncio.sleep(PACE_TICK_S)
        return sent

    pairs = [(c, n) for c in range(first_cluster, first_cluster + clusters) for n in range(CLUSTER_SIZE)]
    try:
        t0 = time.monotonic()
        await asyncio.gather(*(open_and_join(c, n) for c, n in pairs))
        connect_s = time.monotonic() - t0
        await asyncio.wait_for(asyncio.gather(*(c.full for c in clients.values())), 60)
        conn.send(("ready", len(clients), connect_s))
        while True:
            command = await loop.run_in_executor(None, conn.recv)
            if command == "close":
                break
            rate, warm_s, dur_s, also_to, also_clusters = command
            stats["unknown_ok"], stats["unknown_target"] = also_to is not None, 0
            offering = asyncio.ensure_future(offer_load(rate, warm_s + dur_s, also_to, also_clusters))
            await asyncio.sleep(warm_s)
            latencies.clear()
            stats["count"], stats["measuring"] = 0, True
            m0 = time.monotonic()
            await asyncio.sleep(dur_s)
            stats["measuring"] = False
            measured = time.monotonic() - m0
            sent = await offering
            await asyncio.sleep(0.5)  # let the tail drain before the next step
            held = sum(1 for c in clients.values() if not c.closed)
            conn.send(("done", stats["count"], measured, held, stats["errors"], list(latencies), sent,
                       stats["unknown_target"]))
    finally:
        stats["closing"] = True  # peers vanish now: unknown_target is expected
        for client in clients.values():
            if client.transport is not None:
                client.transport.close()
        await asyncio.sleep(0.1)


def child_process(main, nice: int, conn, *args) -> None:
    """A client process (honest or attacking): runs main(*args, conn)."""
    _raise_fd_limit()
    _renice(nice)
    try:
        asyncio.run(main(*args, conn))
    except Exception as exc:  # report, don't hang the parent
        conn.send(("failed", repr(exc)))


# -- attackers (own process) ----------------------------------------------------
#
# Each attack runs from ATTACK_SOURCES loopback addresses of its own (the
# server counts per address; so does the real world) until told to stop,
# reconnecting whenever the server cuts it, and tallies what it got back.

ATTACKS = ["ping_flood", "json_flood", "slow_reader", "churn", "idle_sockets", "squat"]
ATTACK_SOURCES = [f"127.0.200.{i}" for i in range(1, 5)]
SLOW_CLUSTERS = 5  # honest clusters the slow reader sits in
FLOOD_PER_S = 30_000  # frames/s of a flood, all sockets together (the issue measured 30,664 pings/s)


class AttackClient(RawClient):
    """An attacker's socket: tallies frames, errors and close codes, hands
    hello/welcome to `on_frame`."""

    def __init__(self, port: int, tally: dict, on_frame=None):
        super().__init__(port)
        self.tally, self.on_frame = tally, on_frame
        self.gone = asyncio.get_running_loop().create_future()

    def count(self, key: str) -> None:
        self.tally[key] = self.tally.get(key, 0) + 1

    def connection_lost(self, exc):
        super().connection_lost(exc)
        if not self.gone.done():
            self.gone.set_result(None)

    def on_refused(self, status: str) -> None:
        self.count("refused_" + status)

    def on_close(self, code: str) -> None:
        self.count("close_" + code)

    def on_text(self, payload: bytes) -> None:
        self.tally["frames_in"] += 1
        if payload.startswith(b'{"type":"welcome"'):
            self.count("welcomes")
        elif payload.startswith(b'{"type":"error"'):
            self.count("error_" + json.loads(payload)["code"])
        if self.on_frame is not None and (payload.startswith(b'{"type":"hello"')
                                          or payload.startswith(b'{"type":"welcome"')):
            self.on_frame(self, json.loads(payload))


async def _attack_main(port: int, attack: str, sleeper: str, conn) -> None:
    loop = asyncio.get_running_loop()
    tally = {"frames_out": 0, "frames_in": 0, "connects": 0}
    stop = asyncio.Event()
    held = []  # clients kept open (idle sockets, squatters)

    async def connect(source: str, on_frame=None) -> AttackClient | None:
        try:
            _, client = await loop.create_connection(lambda: AttackClient(port, tally, on_frame),
                                                     "127.0.0.1", port, local_addr=(source, 0))
            await asyncio.wait_for(client.upgraded, 10)
        except (OSError, asyncio.TimeoutError):
            await asyncio.sleep(0.2)  # refused (429/503) or gone: try again soon
            return None
        tally["connects"] += 1
        return client

    def join_on_hello(cluster: str, node: str, tokens: dict | None = None):
        def on_frame(client, frame):
            if frame["type"] == "hello":
                join = {"type": "join", "v": 2, "cluster": cluster, "node": node, "kind": "member"}
                if tokens and tokens.get(node):
                    join["token"] = tokens[node]
                client.send(0x1, json.dumps(join).encode())
            elif frame["type"] == "welcome" and tokens is not None:
                tokens[node] = frame["token"]
        return on_frame

    async def blast(source: str, frame_of) -> None:
        """Send frames at this socket's share of FLOOD_PER_S (or as fast as
        the socket takes them, if less); reconnect when cut."""
        batch = max(1, int(FLOOD_PER_S / len(ATTACK_SOURCES) * 0.01))  # per 10 ms
        while not stop.is_set():
            client = await connect(source)
            if client is None:
                continue
            while not client.gone.done() and not stop.is_set():
                for _ in range(batch):
                    opcode, payload = frame_of()
                    client.send(opcode, payload)
                tally["frames_out"] += batch
                while client.transport.get_write_buffer_size() > 1 << 20 and not client.gone.done():
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.01)
            client.transport.close()

    async def slow_reader(c: int, source: str) -> None:
        """A member `sleeper` of honest cluster c that reads nothing, and its
        accomplice stuffing it with 64 KiB signals."""
        tokens: dict = {}
        big = json.dumps({"type": "signal", "to": sleeper, "data": "x" * 64_000}).encode()
        while not stop.is_set():
            reader = await connect(source, join_on_hello(cluster_name(c), sleeper, tokens))
            stuffer = await connect(source, join_on_hello(cluster_name(c), "y" + sleeper, tokens))
            if reader is None or stuffer is None:
                for cl in (reader, stuffer):
                    if cl is not None:
                        cl.transport.close()
                continue
            await asyncio.sleep(0.3)
            reader.transport.pause_reading()
            while not reader.gone.done() and not stuffer.gone.done() and not stop.is_set():
                stuffer.send(0x1, big)
                tally["frames_out"] += 1
                await asyncio.sleep(0.02)  # 50/s: 3 MB/s per cluster
            for cl in (reader, stuffer):
                cl.transport.close()
            await asyncio.sleep(0.1)

    async def churn(c: int, source: str) -> None:
        """Join honest cluster c with a new id and leave, over and over."""
        i, prefix = 0, os.urandom(4).hex()  # new ids every run (old ones stay held)
        while not stop.is_set():
            client = await connect(source)
            if client is None:
                continue
            while not client.gone.done() and not stop.is_set():
                for _ in range(20):
                    i += 1
                    client.send(0x1, json.dumps({"type": "join", "v": 2, "cluster": cluster_name(c),
                                                 "node": f"q{prefix}-{i}", "kind": "member"}).encode())
                    client.send(0x1, b'{"type":"leave"}')
                tally["frames_out"] += 40
                await asyncio.sleep(0.005)
            client.transport.close()

    async def idle_sockets(source: str) -> None:
        """As many never-joining sockets as the server lets this address keep."""
        while not stop.is_set():
            client = await connect(source)
            if client is not None:
                held.append(client)
            else:
                held[:] = [cl for cl in held if not cl.gone.done()]

    async def squat(source: str) -> None:
        """Make clusters, one socket each, as many as the server allows."""
        i, prefix = 0, os.urandom(4).hex()
        while not stop.is_set():
            i += 1
            client = await connect(source, join_on_hello(f"squat-{prefix}-{i}", "0"))
            if client is not None:
                held.append(client)
            await asyncio.sleep(0.01)

    if attack == "ping_flood":
        tasks = [blast(src, lambda: (0x9, b"p")) for src in ATTACK_SOURCES]
    elif attack == "json_flood":
        junk = [(0x1, b'{"type":"ping","x":NaN}'), (0x1, b"not json"), (0x1, b'{"type":"signal"}'),
                (0x1, b'{"type":"join","v":1e400}')]
        tasks = [blast(src, lambda: junk[tally["frames_out"] % 4]) for src in ATTACK_SOURCES]
    elif attack == "slow_reader":
        tasks = [slow_reader(c, ATTACK_SOURCES[c % len(ATTACK_SOURCES)]) for c in range(SLOW_CLUSTERS)]
    elif attack == "churn":
        tasks = [churn(i, src) for i, src in enumerate(ATTACK_SOURCES)]
    elif attack == "idle_sockets":
        tasks = [idle_sockets(src) for src in ATTACK_SOURCES]
    elif attack == "squat":
        tasks = [squat(src) for src in ATTACK_SOURCES]
    running = [asyncio.ensure_future(t) for t in tasks]
    await asyncio.sleep(1.0)
    conn.send(("ready",))
    await loop.run_in_executor(None, conn.recv)
    stop.set()
    tally["held_at_end"] = sum(1 for cl in held if not cl.gone.done())
    await asyncio.sleep(0.2)
    for t in running:
        t.cancel()
    for cl in held:
        cl.transport.close()
    conn.send(("tally", tally))


def describe_attacker(tally: dict | None) -> str:
    if not tally:
        return ""
    return "attacker: " + " ".join(f"{k} {v:,}" for k, v in sorted(tally.items()))


# -- parent --------------------------------------------------------------------

def _renice(nice: int) -> None:
    """--nice: on a machine shared with other work, give the benchmark's own
    processes (server and clients) priority so the figures describe the server,
    not the scheduler. Negative values need root; failures are reported."""
    if nice:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, nice)
        except OSError as exc:
            print(f"cannot set nice {nice}: {exc}", file=sys.stderr)


def _raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    except (ValueError, OSError):
        return soft


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _proc_status(pid: int) -> dict:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024  # MiB
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    out["cpu_s"] = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    out["sys_s"] = int(fields[12]) / tick
    out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return out


def _recv(conn, timeout: float):
    if not conn.poll(timeout):
        raise TimeoutError("worker did not answer in time")
    msg = conn.recv()
    if msg[0] == "failed":
        raise RuntimeError("worker failed: " + msg[1])
    return msg


def percentile(sorted_values: list, q: float) -> float:
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[i]


def measure_step(pipes, per, clusters, rate, args, server_pid, also_to=None, also_clusters=0) -> dict:
    """One measured step at `rate` offered signals/s over all honest sockets."""
    for c, share in zip(pipes, per):
        c.send((rate * share / clusters, args.warmup, args.duration, also_to, also_clusters))
    before = _proc_status(server_pid)
    cpu0 = before["cpu_s"]
    results = [_recv(c, args.warmup + args.duration + 60) for c in pipes]
    loaded = _proc_status(server_pid)
    count = sum(r[1] for r in results)
    measured = max(r[2] for r in results)
    lat = sorted(x for r in results for x in r[5])
    step = {
        "offered_per_s": rate,
        "relayed_per_s": round(count / measured),
        "latency_ms_p50": round(percentile(lat, 0.50) / 1e6, 3),
        "latency_ms_p99": round(percentile(lat, 0.99) / 1e6, 3),
        "sockets_held": sum(r[3] for r in results),
        "error_frames": sum(r[4] for r in results),
        "server_rss_mib": round(loaded["VmRSS"], 1),
        "server_cpu_share": round((loaded["cpu_s"] - cpu0) / (args.warmup + args.duration + 0.5), 2),
        "server_cpu_kernel_fraction": (round((loaded["sys_s"] - before["sys_s"]) / (loaded["cpu_s"] - cpu0), 2)
                                       if loaded["cpu_s"] > cpu0 else None),
        "server_fds": loaded["fds"],
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    if also_to is not None:
        step["unknown_target"] = sum(r[7] for r in results)
    # CPU the server spent per relayed frame (its whole cost, incl. idle heartbeat
    # work) per frame sent in the step: robust to a busy machine, unlike the rate, which
    # the clients also limit. Exact only for steps that kept up.
    relayed_total = sum(r[6] for r in results)
    step["server_cpu_us_per_msg"] = (round((loaded["cpu_s"] - cpu0) / relayed_total * 1e6, 1)
                                     if relayed_total else None)
    return step


def describe(step: dict) -> str:
    return (f"relayed {step['relayed_per_s']:>6,}/s  "
            f"p50 {step['latency_ms_p50']:7.2f} ms  p99 {step['latency_ms_p99']:8.2f} ms  "
            f"held {step['sockets_held']}  server RSS {step['server_rss_mib']} MiB  "
            f"server CPU {step['server_cpu_share']:.0%} ({step['server_cpu_us_per_msg']} us/msg)  "
            f"errors {step['error_frames']}  load {step['load_avg_1m']}")


def run_attack_phase(attack, port, pipes, per, clusters, args, server_pid, ctx) -> dict:
    """The honest load at --attack-rate while one attacker process runs `attack`."""
    attacker = parent = None
    sleeper = "z" + os.urandom(3).hex()  # a new id each phase: an old one stays held
    if attack != "none":
        parent, child = ctx.Pipe()
        attacker = ctx.Process(target=child_process,
                               args=(_attack_main, args.nice, child, port, attack, sleeper), daemon=True)
        attacker.start()
        _recv(parent, 60)  # ramped up
    try:
        also = (sleeper, SLOW_CLUSTERS) if attack == "slow_reader" else (None, 0)
        phase = measure_step(pipes, per, clusters, args.attack_rate, args, server_pid, *also)
        phase["attack"] = attack
        if attacker is not None:
            parent.send("stop")
            phase["attacker"] = _recv(parent, 30)[1]
    finally:
        if attacker is not None:
            attacker.join(10)
            if attacker.is_alive():
                attacker.kill()
    time.sleep(1.0)  # let the server settle before the next phase
    return phase


def summarize_attacks(phases: list[dict]) -> dict:
    """Per attack ("none" = the baselines), the medians over rounds."""
    out = {}
    for attack in dict.fromkeys(p["attack"] for p in phases):
        mine = [p for p in phases if p["attack"] == attack]
        out[attack] = {k: round(statistics.median(p[k] for p in mine), 3)
                       for k in ("latency_ms_p50", "latency_ms_p99", "relayed_per_s", "server_cpu_share")}
        out[attack]["rounds"] = len(mine)
    return out


def run(args) -> dict:
    clusters = -(-args.sockets // CLUSTER_SIZE)
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "signaling", "--host", "127.0.0.1", "--port", str(port),
         "--max-clusters", str(max(1000, clusters))],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        preexec_fn=(lambda: _renice(args.nice)) if args.nice else None)
    workers, pipes = [], []
    try:
        line = server.stdout.readline()
        if "listening" not in line:
            raise RuntimeError(f"server did not start: {line!r}")
        ctx = mp.get_context("spawn")
        per = [clusters // args.workers + (1 if i < clusters % args.workers else 0) for i in range(args.workers)]
        first = 0
        for count in per:
            parent, child = ctx.Pipe()
            p = ctx.Process(target=child_process, args=(_worker_main, args.nice, child, port, first, count),
                            daemon=True)
            p.start()
            workers.append(p)
            pipes.append(parent)
            first += count
        ready = [_recv(c, 120) for c in pipes]
        joined = sum(r[1] for r in ready)
        connect_s = max(r[2] for r in ready)
        idle = _proc_status(server.pid)
        load0 = os.getloadavg()[0]
        print(f"{joined} sockets joined in {clusters} clusters of {CLUSTER_SIZE} "
              f"(connect+join {connect_s:.1f} s); server RSS idle {idle['VmRSS']:.1f} MiB, "
              f"{idle['fds']} fds", flush=True)
        steps = []
        for rate in args.rates:
            step = measure_step(pipes, per, clusters, rate, args, server.pid)
            steps.append(step)
            print(f"offered {rate:>6,}/s  " + describe(step), flush=True)
        attacks = []
        if args.attacks:
            print(f"attack mixes: honest clusters offer {args.attack_rate:,}/s meanwhile; "
                  f"{args.attack_rounds} round(s), each a baseline then every attack", flush=True)
        for round_ in range(args.attack_rounds if args.attacks else 0):
            for attack in ["none"] + args.attacks:
                phase = run_attack_phase(attack, port, pipes, per, clusters, args, server.pid, ctx)
                phase["round"] = round_
                attacks.append(phase)
                print(f"{attack:<13} " + describe(phase) + "  " + describe_attacker(phase.get("attacker")),
                      flush=True)
        attack_summary = summarize_attacks(attacks)
        for attack, figures in attack_summary.items():
            print(f"median over rounds  {attack:<13} p50 {figures['latency_ms_p50']:8.2f} ms  "
                  f"p99 {figures['latency_ms_p99']:8.2f} ms  relayed {figures['relayed_per_s']:,.0f}/s",
                  flush=True)
        for c in pipes:
            c.send("close")
        final = _proc_status(server.pid)
        # the best step that kept up: relayed >= 95% of offered with p50 under 100 ms
        kept_up = [st for st in steps if st["relayed_per_s"] >= 0.95 * st["offered_per_s"]
                   and st["latency_ms_p50"] < 100]
        best = max(kept_up, key=lambda st: st["relayed_per_s"]) if kept_up else None
        summary = {
            "sockets_requested": args.sockets,
            "sockets_joined": joined,
            "sockets_held_at_end": (steps or attacks)[-1]["sockets_held"],
            "clusters": clusters,
            "cluster_size": CLUSTER_SIZE,
            "client_processes": args.workers,
            "connect_join_s": round(connect_s, 2),
            "measured_s_per_step": args.duration,
            "steps": steps,
            "attacks": attacks,
            "attack_medians": attack_summary,
            "max_relayed_per_s_keeping_up": best["relayed_per_s"] if best else None,
            "latency_at_that_rate_ms": ({"p50": best["latency_ms_p50"], "p99": best["latency_ms_p99"]}
                                        if best else None),
            "load_avg_1m_before": round(load0, 2),
            "nice": args.nice,
            "server_rss_mib_idle": round(idle["VmRSS"], 1),
            "server_rss_mib_peak": round(final["VmHWM"], 1),
            "server_fds_idle": idle["fds"],
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "platform": platform.platform()},
            "command": "python -m benchmarks.signaling_load " + " ".join(sys.argv[1:]),
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        return summary
    finally:
        for c in pipes:
            c.close()
        for p in workers:
            p.join(5)
            if p.is_alive():
                p.kill()
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sockets", type=int, default=1000)
    p.add_argument("--duration", type=float, default=8.0, help="measured seconds")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--workers", type=int, default=2, help="client processes")
    p.add_argument("--rates", type=lambda t: [int(x) for x in t.split(",") if x],
                   default=[5000, 10000, 15000, 20000],
                   help="offered signals/s, comma-separated steps (default 5000,10000,15000,20000; "
                        "'' for none)")
    p.add_argument("--nice", type=int, default=0,
                   help="scheduling priority of the server and client processes (e.g. -10 as root "
                        "when the machine is busy with other work; recorded in the results)")
    p.add_argument("--attacks", type=lambda t: ATTACKS if t == "all" else t.split(","), default=[],
                   help="attack mixes to run after the rate steps, comma-separated, or 'all': "
                        + ", ".join(ATTACKS))
    p.add_argument("--attack-rounds", type=int, default=2,
                   help="rounds of (baseline, every attack), for medians (default %(default)s)")
    p.add_argument("--attack-rate", type=int, default=3000,
                   help="signals/s the honest clusters offer during the attack mixes (default %(default)s)")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if any(a not in ATTACKS for a in args.attacks):
        p.error("--attacks: pick from " + ", ".join(ATTACKS))
    if (not 3 <= args.sockets <= 20000 or not 0 < args.duration <= 60 or not 1 <= args.workers <= 8
            or not 0 <= len(args.rates) <= 8 or not all(0 < r <= 200_000 for r in args.rates)
            or not args.rates and not args.attacks):
        p.error("bounded run: 3..20000 sockets, duration up to 60 s, 1..8 workers, 1..8 rates up to 200k/s")
    fds = _raise_fd_limit()
    if fds < args.sockets + 100:
        print(f"fd limit {fds} is below {args.sockets + 100}: raise it with `ulimit -n`", file=sys.stderr)
        return 2
    import signal
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError("benchmark overran")))
    phases = (len(args.attacks) + 1) * args.attack_rounds if args.attacks else 0
    signal.alarm(HARD_TIMEOUT_S + int(phases * (args.warmup + args.duration + 15)))
    summary = run(args)
    signal.alarm(0)
    best = summary["max_relayed_per_s_keeping_up"]
    print(f"sockets held: {summary['sockets_held_at_end']}/{summary['sockets_requested']}  "
          f"max relayed while keeping up: {best if best is None else format(best, ',')} msg/s  "
          f"latency there {summary['latency_at_that_rate_ms']}  "
          f"server RSS idle {summary['server_rss_mib_idle']} MiB, peak {summary['server_rss_mib_peak']} MiB")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
